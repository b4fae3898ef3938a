import type pg from 'pg';
import type { CopyTable } from './tables.js';

type Q = Pick<pg.ClientBase, 'query'>;

/** Column types as one side has them, and its PostgreSQL major version. */
async function columnTypes(c: Q, schema: string, tables: CopyTable[]): Promise<{ major: number; types: Map<string, string> }> {
  // A type of the cluster's own (oid 16384 and up: enums, domains, composites) is sent by its oid inside
  // binary values or depends on definitions at each end: left out, so such a table goes as text.
  const { rows } = await c.query<{ table: string; column: string; type: string; major: number }>(
    `select c.relname as table, a.attname as column, format_type(a.atttypid, a.atttypmod) as type,
            current_setting('server_version_num')::int / 10000 as major
       from pg_attribute a join pg_class c on c.oid = a.attrelid join pg_namespace n on n.oid = c.relnamespace
      where n.nspname = $1 and c.relname = any($2) and a.attnum > 0 and not a.attisdropped and a.atttypid < 16384`,
    [schema, tables.map((t) => t.table)],
  );
  const major = rows[0]?.major ?? 0;
  return { major, types: new Map(rows.map((r) => [JSON.stringify([r.table, r.column]), r.type])) };
}

/**
 * The tables a copy may stream in COPY BINARY: every copied column of the same built-in type
 * (and type modifier) at both ends, on the same PostgreSQL major version. Binary skips making
 * each value's text at the source and parsing it at the target (uuid_in, timestamptz_in, …:
 * about 15% of a row-by-row pool load's CPU on the target); a value whose type differs would be
 * misread or refused, so any difference leaves that table in text, whose parsing converts it.
 */
export async function binaryTables(
  ends: { source: Q; target: Q },
  schemas: { source: string; target: string },
  tables: CopyTable[],
): Promise<Set<string>> {
  const [s, t] = await Promise.all([columnTypes(ends.source, schemas.source, tables), columnTypes(ends.target, schemas.target, tables)]);
  if (s.major !== t.major) return new Set();
  const same = (k: string) => s.types.get(k) !== undefined && s.types.get(k) === t.types.get(k);
  return new Set(tables.filter((tb) => tb.columns.every((col) => same(JSON.stringify([tb.table, col])))).map((tb) => tb.table));
}
