/**
 * Usage of tenants with a placement of their own (a schema of their own, in a shared database or
 * in a database of their own): bytes are pg_total_relation_size (heap, indexes, TOAST) of every
 * table and materialized view of the schema; rows a count(*) per table (or a TABLESAMPLE when
 * estimating). Many schemas of one database are measured on one connection: sizes in one query,
 * counts in statements of up to COUNT_BATCH tables.
 *
 * The `usage` of the own-placement kind (driver-kinds.ts).
 *
 * @module
 */
import type pg from 'pg';
import { literal, qualified } from '../sql.js';
import { emptyUsage, sampled, type DataUsage, type MeasureOptions } from './usage-types.js';

const COUNT_BATCH = 100;

/**
 * Measure the schemas (on a connection to their database). Returns usage per schema; a schema
 * that does not exist is absent.
 *
 * @example
 *   (await ownPlacementUsage(c, ['t_acme'], {})).get('t_acme')?.bytes
 */
export async function ownPlacementUsage(
  c: Pick<pg.ClientBase, 'query'>,
  schemas: string[],
  opts: MeasureOptions,
): Promise<Map<string, DataUsage>> {
  const { rows: tables } = await c.query<{ schema: string; table: string; bytes: string; countable: boolean }>(
    `select n.nspname as schema, c.relname as table, pg_total_relation_size(c.oid)::text as bytes,
            c.relkind in ('r', 'm') as countable
       from pg_class c join pg_namespace n on n.oid = c.relnamespace
      where n.nspname = any($1::text[]) and c.relkind in ('r', 'm', 'p')`,
    [schemas],
  );
  const out = new Map<string, DataUsage>();
  const { rows: present } = await c.query<{ s: string }>('select nspname as s from pg_namespace where nspname = any($1::text[])', [
    schemas,
  ]);
  for (const { s } of present) out.set(s, emptyUsage());
  for (const t of tables) out.get(t.schema)!.bytes += Number(t.bytes);
  const countable = tables.filter((t) => t.countable);
  for (let i = 0; i < countable.length; i += COUNT_BATCH) {
    const batch = countable.slice(i, i + COUNT_BATCH);
    const parts = batch.map((t) => {
      const { from, scale } = sampled(qualified(t.schema, t.table), 't', opts);
      return `select ${literal(t.schema)} as schema, round(count(*) * ${scale})::bigint::text as rows from ${from}`;
    });
    const { rows } = await c.query<{ schema: string; rows: string }>(parts.join('\nunion all\n'));
    for (const r of rows) {
      const u = out.get(r.schema)!;
      u.rows += Number(r.rows);
      u.maxTableRows = Math.max(u.maxTableRows, Number(r.rows));
    }
  }
  return out;
}
