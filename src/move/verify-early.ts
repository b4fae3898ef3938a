import type pg from 'pg';
import type { ForeignKeyCheck } from '../copy/pool-load.js';
import type { CopyTable } from '../copy/tables.js';
import type { CopyRun, Streamed } from './copy-stream.js';
import { digestOf } from './verify-both.js';
import { assertSameDigests, type TableCheck } from './verify-checks.js';
import { settled, unsettle, type Settled } from '../settled.js';

type Digest = { rows: number; hash: string };
type Measured = Settled<Digest>;

/**
 * The verification of a load in committed parts (pool-split.ts) with the source's side off the
 * critical path. The source is fenced and read from ONE snapshot, so its rows cannot change after
 * the snapshot: each table's source digest is taken in that snapshot as soon as the table's rows
 * have left the source (`measureSource`, on the source connection that read them), while the
 * target still checks that table's foreign keys and the next tables load (the source idles then).
 * After the last part commits only the target's side remains, each table measured on one of the
 * target's load connections, all at once (`verify`). Both sides are measured by the same query
 * inside PostgreSQL as verifyBothSides does, never taken from the stream; any difference throws
 * MOVE_VERIFY. A source measurement that failed fails the verification with its own error.
 */
export class EarlySourceDigests {
  private readonly measured = new Map<string, Promise<Measured>>();

  constructor(private readonly run: CopyRun) {}

  private get digest() {
    return digestOf(this.run);
  }

  /**
   * Queue the source digest of `tb` on `source` (a connection in the copy's snapshot, its COPY out
   * of the table finished): pg runs it before anything queued later on that connection. Kept
   * settled, so a failure waits for verify() and is never an unhandled rejection meanwhile.
   */
  measureSource(source: pg.ClientBase, tb: CopyTable): void {
    if (this.measured.has(tb.table)) return;
    this.measured.set(tb.table, settled(this.digest(source, tb, this.run.srcScope, this.run.config)));
  }

  /** Every source measurement ended (the caller's connections may go back then). */
  async settled(): Promise<void> {
    await Promise.all(this.measured.values());
  }

  /**
   * Each table's target digest on the target connections at once (every part committed; the
   * largest tables first, each connection taking the next table when free), compared with its
   * source digest; a table whose source side was not measured during the load is measured now.
   */
  async verify(targets: pg.ClientBase[], streamed: Streamed[], foreignKeys: ForeignKeyCheck): Promise<TableCheck[]> {
    const { tables, dstScope, config, source } = this.run;
    for (const tb of tables) this.measureSource(source, tb);
    const order = tables.map((_, i) => i).sort((a, b) => (streamed[b]?.rows ?? 0) - (streamed[a]?.rows ?? 0));
    const target = new Array<Digest>(tables.length);
    let next = 0;
    // Every connection's work ends before a failure is thrown: none goes back mid-statement.
    const ran = await Promise.allSettled(
      targets.map(async (t) => {
        while (next < order.length) {
          const i = order[next++];
          const d = await this.digest(t, tables[i], dstScope, config);
          target[i] = { rows: d.rows, hash: d.hash };
        }
      }),
    );
    const failed = ran.find((r) => r.status === 'rejected');
    if (failed) throw (failed as PromiseRejectedResult).reason;
    const checks: TableCheck[] = [];
    for (const [i, tb] of tables.entries()) {
      const atSource = unsettle(await this.measured.get(tb.table)!);
      checks.push({ ...streamed[i], source: { rows: atSource.rows, hash: atSource.hash }, target: target[i], foreignKeys });
    }
    return assertSameDigests(checks);
  }
}
