import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type pg from 'pg';
import { TenantctlError } from '../errors.js';
import { copyInSql } from './copy-sql.js';
import { copyIn } from './streams.js';
import { RowTap, type TableDigest } from './row-tap.js';
import type { CopyTable } from './tables.js';

/** What a load must reproduce, per table (a backup manifest's entry, or a source's digest). */
export interface ExpectedTable {
  table: string;
  keyColumn: string;
  columns: string[];
  rows: number;
  sha256: string;
  hash: string;
}

/**
 * Load one table's COPY text into `schema` on the client (inside the caller's transaction),
 * writing `newKey` into the key column when given, and check what streamed in against the
 * expectation (row count and SHA-256 of the text as read). `freeze`: see copyInSql. `sha256`
 * false: the text is streamed from a live source (restore --at), not stored bytes with a
 * recorded SHA-256; the row count is still checked, and the rows' digest by reading back.
 */
export async function loadTable(
  client: pg.ClientBase,
  schema: string,
  expected: ExpectedTable,
  source: Readable[],
  newKey: string | undefined,
  onRows?: (rows: number) => void,
  opts: { freeze?: boolean; sha256?: boolean; signal?: AbortSignal } = {},
): Promise<TableDigest> {
  const t: CopyTable = {
    table: expected.table,
    keyColumn: expected.keyColumn,
    columns: expected.columns,
    keyIndex: expected.columns.indexOf(expected.keyColumn),
  };
  // Rows and SHA-256 against the manifest here; the rows' digest is checked by reading back (src/build/digest.ts).
  const sha256 = opts.sha256 !== false;
  const tap = new RowTap({ keyIndex: t.keyIndex, rewriteKey: newKey, rowHash: false, sha256 });
  let last = 0;
  const timer = onRows ? setInterval(() => tap.rowCount !== last && onRows((last = tap.rowCount)), 500) : undefined;
  try {
    // An abort (Ctrl-C) ends the COPY at once: the copy stream's destroy sends CopyFail, and the
    // caller's transaction rolls the table back, instead of loading every row first.
    await pipeline([...source, tap, copyIn(client, copyInSql(t, schema, opts))] as never, opts.signal ? { signal: opts.signal } : {});
  } finally {
    if (timer) clearInterval(timer);
  }
  const d = tap.digest();
  if (d.rows !== expected.rows || (sha256 && d.sha256 !== expected.sha256)) {
    // The archive is at fault, not the fleet: refused input (exit 2), as verify says of it.
    throw new TenantctlError(
      'BAD_ARCHIVE',
      `${expected.table}: the data read (${d.rows} rows) does not match its checksum in the manifest (${expected.rows} rows); nothing was switched`,
    );
  }
  return d;
}

/** The tables of the placement must have the archive's tables and columns (same migration version). */
export function assertSameShape(have: CopyTable[], want: ExpectedTable[], where: string): void {
  const byName = new Map(have.map((t) => [t.table, t]));
  const problems: string[] = [];
  for (const w of want) {
    const h = byName.get(w.table);
    if (!h) problems.push(`table ${w.table} is missing`);
    else if (h.columns.join(',') !== w.columns.join(','))
      problems.push(`${w.table} has columns (${h.columns.join(', ')}), the backup (${w.columns.join(', ')})`);
  }
  if (problems.length) throw new TenantctlError('RESTORE_FAILED', `${where} does not have the backup's shape: ${problems.join('; ')}`);
}
