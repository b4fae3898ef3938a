import type pg from 'pg';
import { ident } from '../sql.js';
import { holdForFreshLoad, type ConstraintState } from './not-valid-constraints.js';

type Queryable = Pick<pg.ClientBase, 'query'>;

/** maintenance_work_mem while a fresh placement's indexes are built after its load. */
export const REBUILD_WORK_MEM = '256MB';

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
  const d = await dropDeferred(client, schema);
  return async () => {
    // The sorts of the index builds in memory, and a large table's build in parallel workers
    // (PostgreSQL plans workers for a build only while maintenance_work_mem leaves each 32 MB);
    // for this transaction only.
    await client.query(`set local maintenance_work_mem = '${REBUILD_WORK_MEM}'`);
    await buildKeys(client, d);
    await addForeignKeys(client, d);
    await putBack();
  };
}

/** A fresh placement's indexes and constraints, dropped for its load, by definition; `rel` is the table's name. */
export interface Deferred {
  cons: {
    tbl: string;
    rel: string;
    name: string;
    def: string;
    fk: boolean;
    ref: string | null;
    refRel: string | null;
    /** A primary key's or unique constraint's index as CREATE UNIQUE INDEX (not deferrable ones): built apart, then attached (tableSteps). */
    index: string | null;
  }[];
  idx: { name: string; rel: string; def: string }[];
}

/** The drop half of deferIndexes (without the NOT VALID constraints): what it dropped, to build back with buildKeys and addForeignKeys. */
export async function dropDeferred(client: Queryable, schema: string): Promise<Deferred> {
  const { rows: cons } = await client.query<Deferred['cons'][number]>(
    `select k.conrelid::regclass::text as tbl, r.relname as rel, k.conname as name, pg_get_constraintdef(k.oid) as def, k.contype = 'f' as fk,
            case when k.contype = 'f' then k.confrelid::regclass::text end as ref, f.relname as "refRel",
            case when k.contype in ('p', 'u') and not k.condeferrable then pg_get_indexdef(k.conindid) end as index
       from pg_constraint k join pg_namespace n on n.oid = k.connamespace join pg_class r on r.oid = k.conrelid
       left join pg_class f on f.oid = k.confrelid
      where k.contype in ('f', 'p', 'u', 'x') and n.nspname = $1 and k.conparentid = 0 and k.conrelid <> 0
      order by k.contype = 'f' desc, k.conrelid, k.conname`,
    [schema],
  );
  const { rows: idx } = await client.query<Deferred['idx'][number]>(
    `select i.indexrelid::regclass::text as name, r.relname as rel, pg_get_indexdef(i.indexrelid) as def
       from pg_index i
       join pg_class c on c.oid = i.indexrelid
       join pg_class r on r.oid = i.indrelid
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
  return { cons, idx };
}

/** The indexes, then the key constraints (each builds its index once) of `d`. */
export async function buildKeys(client: Queryable, d: Deferred): Promise<void> {
  for (const i of d.idx) await client.query(i.def);
  for (const k of d.cons.filter((c) => !c.fk)) await client.query(`alter table ${k.tbl} add constraint ${ident(k.name)} ${k.def}`);
}

/**
 * The foreign keys of `d`, after statistics on their tables (but those named in `analyzed`, by
 * relname); `notValid`: added NOT VALID, each to be validated later (validateSteps).
 */
export async function addForeignKeys(
  client: Queryable,
  d: Deferred,
  o: { analyzed?: Set<string>; notValid?: boolean } = {},
): Promise<void> {
  const fks = d.cons.filter((c) => c.fk);
  const fkTables = new Map<string, string>();
  for (const c of fks) {
    fkTables.set(c.tbl, c.rel);
    if (c.ref) fkTables.set(c.ref, c.refRel ?? c.ref);
  }
  // Statistics before the foreign keys: each is validated by ONE anti-join, which on tables
  // loaded in this transaction (no statistics) is planned as a nested loop, seconds per key at
  // a million rows instead of a fraction of one. ANALYZE sees the transaction's own rows.
  for (const [t, rel] of fkTables) if (!o.analyzed?.has(rel)) await client.query(`analyze ${t}`);
  // PostgreSQL refuses NOT VALID on a partitioned table's foreign key: that one is checked as it
  // is added (its anti-join now, not later); validateSteps' VALIDATE of it is then a no-op.
  const partitioned = o.notValid ? await partitionedOf(client, [...new Set(fks.map((k) => k.tbl))]) : new Set<string>();
  for (const k of fks) {
    const notValid = o.notValid && !partitioned.has(k.tbl);
    await client.query(`alter table ${k.tbl} add constraint ${ident(k.name)} ${k.def}${notValid ? ' not valid' : ''}`);
  }
}

/** Of these tables (as written in the constraints), the partitioned ones, in one query. */
async function partitionedOf(client: Queryable, tables: string[]): Promise<Set<string>> {
  if (tables.length === 0) return new Set();
  const { rows } = await client.query<{ t: string }>(
    `select t from unnest($1::text[]) t join pg_class c on c.oid = t::regclass where c.relkind = 'p'`,
    [tables],
  );
  return new Set(rows.map((r) => r.t));
}

/**
 * The VALIDATE CONSTRAINT statements of `d`'s foreign keys (added NOT VALID), grouped by the
 * table that holds them: one group's statements run one after another (each locks its table SHARE
 * UPDATE EXCLUSIVE), different groups at once (the referenced tables are only locked ROW SHARE).
 * Each is still the one anti-join of an added foreign key.
 */
export function validateSteps(d: Deferred): string[][] {
  const by = new Map<string, string[]>();
  for (const k of d.cons.filter((c) => c.fk)) {
    const list = by.get(k.tbl) ?? [];
    list.push(`alter table ${k.tbl} validate constraint ${ident(k.name)}`);
    by.set(k.tbl, list);
  }
  return [...by.values()];
}

/**
 * One table's share of `d` as statements: `indexes`, each its own CREATE INDEX (a key's as CREATE
 * UNIQUE INDEX), which may run at once on several connections (each takes a SHARE lock, which
 * does not block the others); then `attach`, on one connection: each key made a constraint on its
 * built index (ADD … USING INDEX: a catalog change, no second build) and the keys that cannot be
 * (exclusion, deferrable) added as they were. pgcopydb builds a table's keys this way too. A
 * constraint's index has the constraint's name, so USING INDEX names it.
 */
export function tableSteps(d: Deferred, rel: string): { indexes: string[]; attach: string[] } {
  const keys = d.cons.filter((k) => !k.fk && k.rel === rel);
  return {
    indexes: [...d.idx.filter((i) => i.rel === rel).map((i) => i.def), ...keys.flatMap((k) => (k.index ? [k.index] : []))],
    attach: keys.map((k) =>
      k.index
        ? `alter table ${k.tbl} add constraint ${ident(k.name)} ${k.def.startsWith('PRIMARY KEY') ? 'primary key' : 'unique'} using index ${ident(k.name)}`
        : `alter table ${k.tbl} add constraint ${ident(k.name)} ${k.def}`,
    ),
  };
}
