import type pg from 'pg';
import { ident } from '../sql.js';

type Queryable = Pick<pg.ClientBase, 'query'>;

/**
 * For a bulk load into a FRESH placement (inside the caller's transaction): drop the schema's
 * foreign keys and the indexes that back no constraint, and return a function that recreates
 * them from their definitions. Building an index once after the load is much cheaper than
 * maintaining it row by row (pg_restore loads the same way); re-adding each foreign key checks
 * every loaded row, so the foreign keys still hold. Never for shared pool tables.
 *
 * @example
 *   const recreate = await deferIndexes(c, 't_acme');
 *   ... COPY ...
 *   await recreate();
 */
export async function deferIndexes(client: Queryable, schema: string): Promise<() => Promise<void>> {
  const { rows: fks } = await client.query<{ tbl: string; name: string; def: string }>(
    `select k.conrelid::regclass::text as tbl, k.conname as name, pg_get_constraintdef(k.oid) as def
       from pg_constraint k join pg_namespace n on n.oid = k.connamespace
      where k.contype = 'f' and n.nspname = $1
      order by k.conrelid, k.conname`,
    [schema],
  );
  const { rows: idx } = await client.query<{ name: string; def: string }>(
    `select i.indexrelid::regclass::text as name, pg_get_indexdef(i.indexrelid) as def
       from pg_index i
       join pg_class c on c.oid = i.indexrelid
       join pg_namespace n on n.oid = c.relnamespace
      where n.nspname = $1
        and not exists (select 1 from pg_constraint k where k.conindid = i.indexrelid)
      order by c.relname`,
    [schema],
  );
  // regclass text and the definitions are PostgreSQL's own quoting, valid on this connection.
  for (const f of fks) await client.query(`alter table ${f.tbl} drop constraint ${ident(f.name)}`);
  for (const i of idx) await client.query(`drop index ${i.name}`);
  return async () => {
    for (const i of idx) await client.query(i.def);
    for (const f of fks) await client.query(`alter table ${f.tbl} add constraint ${ident(f.name)} ${f.def}`);
  };
}
