import type pg from 'pg';

/** The part of pg's connection a message writes to (pg's own Query uses the same calls). */
interface Wire {
  query(text: string): void;
  sendCopyFail(message: string): void;
}

/**
 * A shared message of several targets (apply-batch.ts) sent as ONE simple query whose results
 * nobody reads: it counts the statements that completed and keeps the first error, and builds
 * nothing else. pg's own Query builds a Result per statement (fields, a parser per column, a row
 * object per row, the command tag parsed by a regular expression): five per target, 640 for a
 * message of 128 targets, all garbage at once (issue 22.3: node's CPU per target).
 *
 * `done` resolves with the number of statements that completed when the server is ready for the
 * next query, or rejects with the first error: PostgreSQL skips the rest of a simple query after
 * an error (pg hands the connection on at that point; the caller's next query waits for it), and
 * a lost connection is an error too.
 *
 * @example
 *   const m = new SilentMessage('begin; select 1; commit;');
 *   client.query(m);
 *   await m.done; // 3
 */
export class SilentMessage implements pg.Submittable {
  /** Statements completed so far (CommandComplete messages). */
  completed = 0;
  readonly done: Promise<number>;
  private settle!: (err: unknown) => void;

  constructor(readonly text: string) {
    this.done = new Promise<number>((resolve, reject) => {
      let open = true;
      this.settle = (err) => {
        if (!open) return;
        open = false;
        if (err === undefined) resolve(this.completed);
        else reject(err);
      };
    });
  }

  submit(connection: pg.Connection): void {
    (connection as unknown as Wire).query(this.text);
  }

  handleRowDescription(): void {}

  handleDataRow(): void {}

  handleCommandComplete(): void {
    this.completed++;
  }

  handleEmptyQuery(): void {}

  handlePortalSuspended(): void {}

  /** A `copy … from stdin` in a file: nothing to send (pg's Query does the same). */
  handleCopyInResponse(connection: pg.Connection): void {
    (connection as unknown as Wire).sendCopyFail('No source stream defined');
  }

  handleCopyData(): void {}

  handleError(err: unknown): void {
    this.settle(err);
  }

  handleReadyForQuery(): void {
    this.settle(undefined);
  }
}
