import { TenantctlError } from '../errors.js';
import type { ForeignKeyCheck } from '../copy/pool-load.js';

/** One table's proof: what was streamed, and the digests read back on each side. */
export interface TableCheck {
  table: string;
  rows: number;
  bytes: number;
  source: { rows: number; hash: string };
  target: { rows: number; hash: string };
  /** How the target checked this table's foreign keys (see ForeignKeyCheck); absent for an online move (replication applies rows with triggers off, as PostgreSQL's subscriptions do). */
  foreignKeys?: ForeignKeyCheck;
  /** Into a pool row by row: in how many parts at once this table was loaded, each committed on its own (pool-split.ts). */
  parts?: number;
  /** 'binary' when the table went as COPY BINARY (the same built-in column types at both ends, binary-copy.ts); absent: text. */
  format?: 'binary';
}

/** The checks, when every table's digests agree; else MOVE_VERIFY naming each table that differs. */
export function assertSameDigests(checks: TableCheck[]): TableCheck[] {
  const wrong = checks.filter((c) => c.source.rows !== c.target.rows || c.source.hash !== c.target.hash);
  if (wrong.length) {
    throw new MoveVerifyError(
      `verification failed: ${wrong.map((w) => `${w.table}: source ${w.source.rows} rows (hash ${w.source.hash}), target ${w.target.rows} rows (hash ${w.target.hash})`).join('; ')}; nothing was switched, the copy was removed`,
      checks,
    );
  }
  return checks;
}

export class MoveVerifyError extends TenantctlError {
  constructor(
    message: string,
    readonly checks: TableCheck[],
  ) {
    super('MOVE_VERIFY', message);
  }
}
