import type pg from 'pg';
import { ident, qualified } from '../sql.js';

/**
 * Move every sequence a column of these tables takes its values from past the highest value now
 * in the column, never backwards: rows loaded with their own ids must not collide with the next
 * insert. Those are the sequences a column owns (serial, identity) and those a column's default
 * calls (`default nextval('ticket_no_seq')`, a sequence made on its own and maybe shared by
 * several columns). A default that computes with the value (`nextval(..) * 10`) moves it past the
 * column's maximum too: a gap, never a repeat. Only integer columns (a text default built from
 * the sequence cannot be compared). With `handedOut` (sequenceValues of a move's source), also
 * past what those sequences handed out there (raiseSequences). Returns the sequences it moved.
 */
export async function advanceSequences(
  client: Pick<pg.ClientBase, 'query'>,
  schema: string,
  tables: string[],
  handedOut?: SequenceValues,
): Promise<string[]> {
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
  // And past what the source handed out (a move's), when given.
  if (handedOut) await raiseSequences(client, schema, handedOut);
  return rows.map((r) => r.seq);
}

/** The last value each sequence of a schema has handed out, by its name (see sequenceValues). */
export type SequenceValues = Map<string, string>;

/**
 * The last value each ascending sequence of `schema` has handed out, by name: those never read
 * (or that tenantctl's role may not read) are left out. A placement's sequences are usually past
 * its highest ids (rows deleted, inserts rolled back): what the copy alone does not show.
 */
export async function sequenceValues(client: Pick<pg.ClientBase, 'query'>, schema: string): Promise<SequenceValues> {
  const { rows } = await client.query<{ name: string; v: string }>(
    `select sequencename as name, last_value::text as v from pg_sequences
      where schemaname = $1 and last_value is not null and increment_by > 0`,
    [schema],
  );
  return new Map(rows.map((r) => [r.name, r.v]));
}

/**
 * Move each sequence of `schema` past the value its namesake handed out where the tenant was (a
 * move's source, the placement a restore replaces), never backwards: an id the application was
 * given there (of a row deleted since, or never committed) is not given again. A value the
 * sequence here cannot take (another type's maximum) is left. Returns the sequences it moved.
 */
export async function raiseSequences(client: Pick<pg.ClientBase, 'query'>, schema: string, values: SequenceValues): Promise<string[]> {
  if (values.size === 0) return [];
  const { rows } = await client.query<{ name: string; seq: string; inc: string }>(
    `select sequencename as name, format('%I.%I', schemaname, sequencename) as seq, increment_by::text as inc
       from pg_sequences where schemaname = $1 and sequencename = any($2::text[]) and increment_by > 0`,
    [schema, [...values.keys()]],
  );
  const moved: string[] = [];
  for (const r of rows) {
    const v = values.get(r.name)!;
    // The last value handed out here (is_called false: the next one is last_value itself).
    const res = await client.query(
      `select setval($1::regclass, $2::bigint, true) from ${r.seq} s, pg_sequences p
        where p.schemaname = $3 and p.sequencename = $4 and $2::bigint <= p.max_value
          and (case when s.is_called then s.last_value else s.last_value - $5::bigint end) < $2::bigint`,
      [r.seq, v, schema, r.name, r.inc],
    );
    if (res.rowCount) moved.push(r.seq);
  }
  return moved;
}
