import type pg from 'pg';
import type { Config, Model } from '../config/types.js';
import { scopedTablesInOrder } from '../placement/scoped-tables.js';

/** One table of a copy: its key column and the columns copied, in a fixed order. */
export interface CopyTable {
  table: string;
  /** The tenant-key column. */
  keyColumn: string;
  /** Stored columns in attribute order (generated columns are recomputed on load, so left out). */
  columns: string[];
  /** Index of keyColumn in columns. */
  keyIndex: number;
}

/**
 * The scope of a copy: a pool placement selects by key; a schema or database placement belongs
 * to one tenant, so everything in its tenant-scoped tables is the tenant's.
 */
export interface CopyScope {
  model: Model;
  schema: string;
  /** The key of the tenant's rows (pool: the filter; always: what the archive records). */
  key: string;
}

type Queryable = Pick<pg.ClientBase, 'query'>;

/**
 * The placement's tenant-scoped tables in foreign-key order (parents first), each with its
 * columns: what a backup copies and what a restore loads, in that order.
 *
 * @example
 *   await copyTables(client, 'app', config)
 *   // [{ table: 'workspaces', keyColumn: 'id', columns: ['id','name','created_at'], keyIndex: 0 }, …]
 */
export async function copyTables(
  client: Queryable,
  schema: string,
  config: Pick<Config, 'tenantKey' | 'rls' | 'servingRole'>,
): Promise<CopyTable[]> {
  const scoped = await scopedTablesInOrder(client, schema, config);
  if (scoped.length === 0) return [];
  const { rows } = await client.query<{ table: string; columns: string[] }>(
    `select c.relname as table, array_agg(a.attname::text order by a.attnum) as columns
       from pg_class c
       join pg_namespace n on n.oid = c.relnamespace
       join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped and a.attgenerated = ''
      where n.nspname = $1 and c.relname = any($2)
      group by c.relname`,
    [schema, scoped.map((s) => s.table)],
  );
  const cols = new Map(rows.map((r) => [r.table, r.columns]));
  return scoped.map((s) => {
    const columns = cols.get(s.table) ?? [];
    return { table: s.table, keyColumn: s.column, columns, keyIndex: columns.indexOf(s.column) };
  });
}

/** The schema's plain tables (relkind r): those COPY FREEZE accepts, unlike partitioned ones. */
export async function plainTables(client: Queryable, schema: string): Promise<Set<string>> {
  const { rows } = await client.query<{ relname: string }>(
    `select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace where n.nspname = $1 and c.relkind = 'r'`,
    [schema],
  );
  return new Set(rows.map((r) => r.relname));
}
