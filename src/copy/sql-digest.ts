import type pg from 'pg';
import type { Config } from '../config/types.js';
import { scopeWhere } from '../placement/placement.js';
import { ident, qualified } from '../sql.js';
import type { CopyScope, CopyTable } from './tables.js';

/** A table's rows in a scope as PostgreSQL measured them (sqlDigest). */
export interface SqlDigest {
  rows: number;
  /** Order-independent: `<rows>:<two sums of 64-bit slices of each row's md5>`. */
  hash: string;
  /** Bytes of the rows' text (about what COPY would stream). */
  bytes: number;
}

/**
 * Count and hash a table's rows in the scope inside PostgreSQL: each row's text (the key column
 * left out, so a clone under a new key or the same rows in another model hash the same) through
 * md5, two 64-bit slices of it summed over all rows (sums commute: any order, duplicates count).
 * No row leaves the server, so both ends of a move are measured at once, each on its own
 * cluster, by the same query; the rows only have to have the same columns and types (the same
 * migration version, which the move's preflight makes sure of). A fingerprint for equality, like
 * RowTap's hash, which stays the one a backup's manifest records.
 *
 * @example
 *   const [a, b] = await Promise.all([sqlDigest(src, t, srcScope, config), sqlDigest(dst, t, dstScope, config)]);
 *   a.hash === b.hash
 */
export async function sqlDigest(
  client: Pick<pg.ClientBase, 'query'>,
  t: CopyTable,
  scope: CopyScope,
  config: Pick<Config, 'tenantKey'>,
): Promise<SqlDigest> {
  const { rows } = await client.query<{ n: string; a: string; b: string; bytes: string }>(sqlDigestQuery(t, scope, config));
  const r = rows[0];
  return { rows: Number(r.n), hash: `${r.n}:${r.a}:${r.b}`, bytes: Number(r.bytes) };
}

/** The query of sqlDigest (exported for its unit test). */
export function sqlDigestQuery(t: CopyTable, scope: CopyScope, config: Pick<Config, 'tenantKey'>): string {
  const cols = t.columns.filter((c) => c !== t.keyColumn).map(ident);
  // row(a)::text is "(a)", row(a, b)::text is "(a,b)"; a table of only the key column hashes its count.
  const text = cols.length ? `row(${cols.join(', ')})::text` : `''`;
  const from = `${qualified(scope.schema, t.table)}${scopeWhere(scope, t.keyColumn, config.tenantKey.type)}`;
  return `select count(*)::text as n,
       coalesce(sum(('x' || substr(h, 1, 16))::bit(64)::bigint::numeric), 0)::text as a,
       coalesce(sum(('x' || substr(h, 17, 16))::bit(64)::bigint::numeric), 0)::text as b,
       coalesce(sum(len), 0)::text as bytes
  from (select md5(r) as h, octet_length(r) as len from (select ${text} as r from ${from}) s) d`;
}
