import type pg from 'pg';
import type { Config } from '../config/types.js';
import { tenantScopedTables, type ScopedTable } from './pool/rls.js';

/**
 * Tenant-scoped tables of a schema (see tenantScopedTables in rls.ts), parents before children by
 * foreign key, so copying goes in this order and deleting in the reverse. Read from the PostgreSQL
 * catalog: the database is the truth about its tables.
 */
export async function scopedTablesInOrder(
  client: Pick<pg.ClientBase, 'query'>,
  schema: string,
  config: Pick<Config, 'tenantKey' | 'rls' | 'servingRole'>,
): Promise<ScopedTable[]> {
  const scoped = new Map((await tenantScopedTables(client, schema, config)).map((t) => [t.table, t.column]));
  const edges = await foreignKeyEdges(client, schema);
  return topoOrder([...scoped.keys()].sort(), edges).map((table) => ({ table, column: scoped.get(table)! }));
}

/** The schema's foreign keys between its own tables, child → parent (a self-reference is child = parent). */
export async function foreignKeyEdges(client: Pick<pg.ClientBase, 'query'>, schema: string): Promise<{ child: string; parent: string }[]> {
  const { rows } = await client.query<{ child: string; parent: string }>(
    `select ch.relname as child, pa.relname as parent
       from pg_constraint k
       join pg_class ch on ch.oid = k.conrelid
       join pg_class pa on pa.oid = k.confrelid
       join pg_namespace n on n.oid = ch.relnamespace
      where k.contype = 'f' and n.nspname = $1 and pa.relnamespace = ch.relnamespace`,
    [schema],
  );
  return rows;
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
