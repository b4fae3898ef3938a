import type pg from 'pg';
import type { Config } from '../config/types.js';
import { scopeWhere } from '../placement/placement.js';
import { ident, qualified } from '../sql.js';
import type { CopyScope, CopyTable } from './tables.js';

/** A table's rows in a scope as PostgreSQL measured them (sqlDigest). */
export interface SqlDigest {
  rows: number;
  /** Order-independent: `<rows>:<sum of hashtextextended(row, 0)>:<sum with seed 1>`. */
  hash: string;
  /** Bytes of the rows' text (about what COPY would stream). */
  bytes: number;
}

/**
 * Count and hash a table's rows in the scope inside PostgreSQL: each row's text (the key column
 * left out, so a clone under a new key or the same rows in another model hash the same) through
 * two seeds of PostgreSQL's 64-bit text hash, each summed over all rows (sums commute: any order,
 * duplicates count; md5 of the same text took 2.5 times as long).
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
  only?: DigestRows,
): Promise<SqlDigest> {
  const { rows } = await client.query<{ n: string; a: string; b: string; bytes: string }>(
    sqlDigestQuery(t, scope, config, only),
    only ? [only.images] : [],
  );
  const r = rows[0];
  return { rows: Number(r.n), hash: `${r.n}:${r.a}:${r.b}`, bytes: Number(r.bytes) };
}

/**
 * Only the rows whose primary key is in these row images (a jsonb array, the query's $1): what an
 * online move's last round of replay touched (src/move/capture/).
 */
export interface DigestRows {
  pk: string[];
  images: string;
}

/** The query of sqlDigest (exported for its unit test). */
export function sqlDigestQuery(t: CopyTable, scope: CopyScope, config: Pick<Config, 'tenantKey'>, only?: DigestRows): string {
  const cols = t.columns.filter((c) => c !== t.keyColumn).map(ident);
  // row(a)::text is "(a)", row(a, b)::text is "(a,b)"; a table of only the key column hashes its count.
  const text = cols.length ? `row(${cols.join(', ')})::text` : `''`;
  const where = scopeWhere(scope, t.keyColumn, config.tenantKey.type);
  const pk = only?.pk.map(ident).join(', ');
  const rows = only
    ? `${where ? `${where} and` : ' where'} (${pk}) in (select ${pk} from jsonb_populate_recordset(null::${qualified(scope.schema, t.table)}, $1::jsonb))`
    : where;
  const from = `${qualified(scope.schema, t.table)}${rows}`;
  // OFFSET 0 keeps the subquery whole, so each row's text is made once, not once per use.
  return `select count(*)::text as n,
       coalesce(sum(hashtextextended(r, 0)), 0)::text as a,
       coalesce(sum(hashtextextended(r, 1)), 0)::text as b,
       coalesce(sum(octet_length(r)), 0)::text as bytes
  from (select ${text} as r from ${from} offset 0) s`;
}
