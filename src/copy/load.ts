import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type pg from 'pg';
import type { Config } from '../config/types.js';
import { TenantctlError } from '../errors.js';
import { copyInSql } from './copy-sql.js';
import { copyIn, digestTable } from './streams.js';
import { RowTap, type TableDigest } from './row-tap.js';
import type { CopyScope, CopyTable } from './tables.js';

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
 * expectation (row count and SHA-256 of the text as read). `freeze`: see copyInSql.
 */
export async function loadTable(
  client: pg.ClientBase,
  schema: string,
  expected: ExpectedTable,
  source: Readable[],
  newKey: string | undefined,
  onRows?: (rows: number) => void,
  opts: { freeze?: boolean } = {},
): Promise<TableDigest> {
  const t: CopyTable = {
    table: expected.table,
    keyColumn: expected.keyColumn,
    columns: expected.columns,
    keyIndex: expected.columns.indexOf(expected.keyColumn),
  };
  // Rows and SHA-256 against the manifest here; the row hash is checked by reading back (verifyLoaded).
  const tap = new RowTap({ keyIndex: t.keyIndex, rewriteKey: newKey, rowHash: false });
  let last = 0;
  const timer = onRows ? setInterval(() => tap.rowCount !== last && onRows((last = tap.rowCount)), 500) : undefined;
  try {
    await pipeline([...source, tap, copyIn(client, copyInSql(t, schema, opts))] as never);
  } finally {
    if (timer) clearInterval(timer);
  }
  const d = tap.digest();
  if (d.rows !== expected.rows || d.sha256 !== expected.sha256) {
    throw new TenantctlError(
      'RESTORE_FAILED',
      `${expected.table}: the data read (${d.rows} rows) does not match its checksum in the manifest (${expected.rows} rows); nothing was switched`,
    );
  }
  return d;
}

/**
 * Read back what is now in the placement (the tenant's scope, in the caller's transaction) and
 * compare each table's row count and order-independent hash with the expectation. Throws, so
 * the caller's transaction rolls back and nothing is switched.
 */
export async function verifyLoaded(
  client: pg.ClientBase,
  scope: CopyScope,
  expected: ExpectedTable[],
  config: Pick<Config, 'tenantKey'>,
): Promise<void> {
  const wrong: string[] = [];
  for (const e of expected) {
    const t: CopyTable = { table: e.table, keyColumn: e.keyColumn, columns: e.columns, keyIndex: e.columns.indexOf(e.keyColumn) };
    const d = await digestTable(client, t, scope, config);
    if (d.rows !== e.rows) wrong.push(`${e.table}: ${d.rows} rows, expected ${e.rows}`);
    else if (d.hash !== e.hash) wrong.push(`${e.table}: the rows differ from the backup's (hash)`);
  }
  if (wrong.length) throw new TenantctlError('RESTORE_FAILED', `after loading, ${wrong.join('; ')}; nothing was switched`);
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
