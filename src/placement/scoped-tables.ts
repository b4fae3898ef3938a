import type pg from 'pg';
import type { Config } from '../config/types.js';

export interface ScopedTable {
  table: string;
  /** The column holding the tenant key in this table. */
  keyColumn: string;
}

/**
 * Tenant-scoped tables of a schema (those carrying the key column, or their configured
 * override), parents before children by foreign key, so copying goes in this order and deleting
 * in the reverse. Read from the PostgreSQL catalog: the database is the truth about its tables.
 */
export async function scopedTablesInOrder(
  client: Pick<pg.ClientBase, 'query'>,
  schema: string,
  config: Pick<Config, 'tenantKey'>,
): Promise<ScopedTable[]> {
  const { rows: cols } = await client.query<{ table: string; column: string }>(
    `select c.relname as table, a.attname as column
       from pg_class c
       join pg_namespace n on n.oid = c.relnamespace
       join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
      where n.nspname = $1 and c.relkind in ('r', 'p')`,
    [schema],
  );
  const overrides = config.tenantKey.tables;
  const byTable = new Map<string, Set<string>>();
  for (const r of cols) {
    if (!byTable.has(r.table)) byTable.set(r.table, new Set());
    byTable.get(r.table)!.add(r.column);
  }
  const scoped = new Map<string, string>();
  for (const [table, columns] of byTable) {
    const keyColumn = overrides[table] ?? config.tenantKey.column;
    if (columns.has(keyColumn)) scoped.set(table, keyColumn);
  }
  const { rows: edges } = await client.query<{ child: string; parent: string }>(
    `select ch.relname as child, pa.relname as parent
       from pg_constraint k
       join pg_class ch on ch.oid = k.conrelid
       join pg_class pa on pa.oid = k.confrelid
       join pg_namespace n on n.oid = ch.relnamespace
      where k.contype = 'f' and n.nspname = $1 and pa.relnamespace = ch.relnamespace`,
    [schema],
  );
  return topoOrder([...scoped.keys()].sort(), edges).map((table) => ({ table, keyColumn: scoped.get(table)! }));
}

/** Parents first; tables in a cycle (or self-references) keep their name order at the end. */
export function topoOrder(tables: string[], edges: { child: string; parent: string }[]): string[] {
  const set = new Set(tables);
  const parents = new Map<string, Set<string>>(tables.map((t) => [t, new Set()]));
  for (const e of edges) {
    if (set.has(e.child) && set.has(e.parent) && e.child !== e.parent) parents.get(e.child)!.add(e.parent);
  }
  const out: string[] = [];
  const done = new Set<string>();
  let progress = true;
  while (progress) {
    progress = false;
    for (const t of tables) {
      if (done.has(t)) continue;
      if ([...parents.get(t)!].every((p) => done.has(p))) {
        out.push(t);
        done.add(t);
        progress = true;
      }
    }
  }
  for (const t of tables) if (!done.has(t)) out.push(t);
  return out;
}
