import type pg from 'pg';
import { ident } from '../sql.js';
import { holdForFreshLoad, type ConstraintState } from './not-valid-constraints.js';

type Queryable = Pick<pg.ClientBase, 'query'>;

/** maintenance_work_mem while a fresh placement's indexes are built after its load. */
const REBUILD_WORK_MEM = '256MB';

/**
 * For a bulk load into a FRESH placement (inside the caller's transaction): drop the schema's
 * foreign keys, its primary key, unique and exclusion constraints, and the indexes that back no
 * constraint, and return a function that recreates them from their definitions: indexes, then
 * the key constraints (each builds its index once), then the foreign keys (each checks every
 * loaded row with one query). Building an index once after the load is much cheaper than
 * maintaining it row by row; this is pg_restore's order (data, indexes, constraints). The keys
 * and foreign keys still hold: re-adding them fails on a duplicate or an orphan, and the
 * transaction with it. Never for shared pool tables. Partitions' inherited constraints and
 * indexes go and come back with their parent's. Check and foreign-key constraints NOT VALID at
 * the source (`source`, see not-valid-constraints.ts) are held too and come back NOT VALID, so
 * the rows that break them load; those the source validated come back validated.
 *
 * @example
 *   const recreate = await deferIndexes(c, 't_acme', manifest.constraints);
 *   ... COPY ...
 *   await recreate();
 */
export async function deferIndexes(client: Queryable, schema: string, source?: ConstraintState[]): Promise<() => Promise<void>> {
  const putBack = await holdForFreshLoad(client, schema, source);
  const { rows: cons } = await client.query<{ tbl: string; name: string; def: string; fk: boolean; ref: string | null }>(
    `select k.conrelid::regclass::text as tbl, k.conname as name, pg_get_constraintdef(k.oid) as def, k.contype = 'f' as fk,
            case when k.contype = 'f' then k.confrelid::regclass::text end as ref
       from pg_constraint k join pg_namespace n on n.oid = k.connamespace
      where k.contype in ('f', 'p', 'u', 'x') and n.nspname = $1 and k.conparentid = 0 and k.conrelid <> 0
      order by k.contype = 'f' desc, k.conrelid, k.conname`,
    [schema],
  );
  const { rows: idx } = await client.query<{ name: string; def: string }>(
    `select i.indexrelid::regclass::text as name, pg_get_indexdef(i.indexrelid) as def
       from pg_index i
       join pg_class c on c.oid = i.indexrelid
       join pg_namespace n on n.oid = c.relnamespace
      where n.nspname = $1
        and not exists (select 1 from pg_constraint k where k.conindid = i.indexrelid)
        and not exists (select 1 from pg_inherits h where h.inhrelid = i.indexrelid)
      order by c.relname`,
    [schema],
  );
  // regclass text and the definitions are PostgreSQL's own quoting, valid on this connection.
  // Foreign keys first (they depend on the referenced keys), then the keys, then the indexes.
  for (const k of cons) await client.query(`alter table ${k.tbl} drop constraint ${ident(k.name)}`);
  for (const i of idx) await client.query(`drop index ${i.name}`);
  return async () => {
    // The sorts of the index builds in memory, and a large table's build in parallel workers
    // (PostgreSQL plans workers for a build only while maintenance_work_mem leaves each 32 MB);
    // for this transaction only.
    await client.query(`set local maintenance_work_mem = '${REBUILD_WORK_MEM}'`);
    for (const i of idx) await client.query(i.def);
    for (const k of cons.filter((c) => !c.fk)) await client.query(`alter table ${k.tbl} add constraint ${ident(k.name)} ${k.def}`);
    // Statistics before the foreign keys: each is validated by ONE anti-join, which on tables
    // loaded in this transaction (no statistics) is planned as a nested loop, seconds per key at
    // a million rows instead of a fraction of one. ANALYZE sees the transaction's own rows.
    const fkTables = new Set(cons.filter((c) => c.fk).flatMap((c) => [c.tbl, c.ref ?? c.tbl]));
    for (const t of fkTables) await client.query(`analyze ${t}`);
    for (const k of cons.filter((c) => c.fk)) await client.query(`alter table ${k.tbl} add constraint ${ident(k.name)} ${k.def}`);
    await putBack();
  };
}
