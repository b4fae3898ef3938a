import type pg from 'pg';
import { ident, qualified } from '../sql.js';

/**
 * Move every sequence a column of these tables takes its values from past the highest value now
 * in the column, never backwards: rows loaded with their own ids must not collide with the next
 * insert. Those are the sequences a column owns (serial, identity) and those a column's default
 * calls (`default nextval('ticket_no_seq')`, a sequence made on its own and maybe shared by
 * several columns). A default that computes with the value (`nextval(..) * 10`) moves it past the
 * column's maximum too: a gap, never a repeat. Only integer columns (a text default built from
 * the sequence cannot be compared). Returns the sequences it moved.
 */
export async function advanceSequences(client: Pick<pg.ClientBase, 'query'>, schema: string, tables: string[]): Promise<string[]> {
  if (tables.length === 0) return [];
  const { rows } = await client.query<{ table: string; column: string; seq: string }>(
    `select c.relname as table, a.attname as column, s.oid::regclass::text as seq
       from pg_depend d
       join pg_class s on s.oid = d.objid and s.relkind = 'S'
       join pg_class c on c.oid = d.refobjid
       join pg_namespace n on n.oid = c.relnamespace
       join pg_attribute a on a.attrelid = c.oid and a.attnum = d.refobjsubid
      where d.classid = 'pg_class'::regclass and d.refclassid = 'pg_class'::regclass
        and d.deptype in ('a', 'i') and n.nspname = $1 and c.relname = any($2)
     union
     select c.relname, a.attname, s.oid::regclass::text
       from pg_attrdef ad
       join pg_depend d on d.classid = 'pg_attrdef'::regclass and d.objid = ad.oid
                       and d.refclassid = 'pg_class'::regclass and d.deptype = 'n'
       join pg_class s on s.oid = d.refobjid and s.relkind = 'S'
       join pg_class c on c.oid = ad.adrelid
       join pg_namespace n on n.oid = c.relnamespace
       join pg_attribute a on a.attrelid = c.oid and a.attnum = ad.adnum
      where n.nspname = $1 and c.relname = any($2) and a.atttypid in ('int2'::regtype, 'int4'::regtype, 'int8'::regtype)
      order by 3, 1, 2`,
    [schema, tables],
  );
  for (const r of rows) {
    // is_called false at the max: the next nextval returns max + 1 (or the start for an empty table).
    await client.query(
      `select setval($1::regclass, greatest(coalesce((select max(${ident(r.column)}) from ${qualified(schema, r.table)}), 0) + 1,
                                        (select last_value + case when is_called then 1 else 0 end from ${r.seq})), false)`,
      [r.seq],
    );
  }
  return rows.map((r) => r.seq);
}
