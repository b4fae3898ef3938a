import type pg from 'pg';
import type { Config } from '../config/types.js';
import { TenantctlError } from '../errors.js';
import { sqlDigest } from '../copy/sql-digest.js';
import { isRecordHash, recordDigest } from '../copy/record-digest.js';
import { digestTable } from '../copy/streams.js';
import type { CopyScope, CopyTable } from '../copy/tables.js';

/**
 * Whether a recorded row hash is RowTap's (`<rows>:<32 hex digits>`), the hash archives and moves
 * recorded before the one digest (sqlDigest, `<rows>:<sum>:<sum>`). New records hold sqlDigest's
 * only; RowTap's is kept to check what was recorded with it (older archives, older moves).
 */
export function isLegacyRowHash(hash: string): boolean {
  return hash.split(':').length === 2;
}

/**
 * The ONE digest of a table's rows in a scope, computed inside PostgreSQL (sqlDigest: no row
 * leaves the server, both sides of a move or a restore measured by the same query), or RowTap's
 * over the COPY text when `like` was recorded with it, so that an older record is still checked,
 * or recordDigest's when `like` is one (what an offline move into a new placement records).
 *
 * @example
 *   (await rowDigest(c, t, scope, config, manifestTable.hash)).hash === manifestTable.hash
 */
export async function rowDigest(
  c: pg.ClientBase,
  t: CopyTable,
  scope: CopyScope,
  config: Pick<Config, 'tenantKey'>,
  like?: string,
): Promise<{ rows: number; hash: string }> {
  if (like && isRecordHash(like)) return recordDigest(c, t, scope, config);
  const d = like && isLegacyRowHash(like) ? await digestTable(c, t, scope, config) : await sqlDigest(c, t, scope, config);
  return { rows: d.rows, hash: d.hash };
}

/** What a load must reproduce, per table: a backup manifest's entry. */
export interface ExpectedRows {
  table: string;
  keyColumn: string;
  columns: string[];
  rows: number;
  hash: string;
}

/**
 * Read back what is now in the placement (the tenant's scope, in the caller's transaction) and
 * compare each table's row count and digest with the expectation. Throws, so the caller's
 * transaction rolls back and nothing is switched.
 */
export async function verifyLoaded(
  client: pg.ClientBase,
  scope: CopyScope,
  expected: ExpectedRows[],
  config: Pick<Config, 'tenantKey'>,
): Promise<void> {
  const wrong: string[] = [];
  for (const e of expected) {
    const t: CopyTable = { table: e.table, keyColumn: e.keyColumn, columns: e.columns, keyIndex: e.columns.indexOf(e.keyColumn) };
    const d = await rowDigest(client, t, scope, config, e.hash);
    if (d.rows !== e.rows) wrong.push(`${e.table}: ${d.rows} rows, expected ${e.rows}`);
    else if (d.hash !== e.hash) wrong.push(`${e.table}: the rows differ from the backup's (hash)`);
  }
  if (wrong.length) throw new TenantctlError('RESTORE_FAILED', `after loading, ${wrong.join('; ')}; nothing was switched`);
}
