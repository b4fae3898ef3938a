/**
 * Usage of tenants with a placement of their own (a schema of their own, in a shared database or
 * in a database of their own): bytes are pg_total_relation_size (heap, indexes, TOAST) of every
 * table and materialized view of the schema; rows a count(*) per table (or a TABLESAMPLE when
 * estimating). Many schemas of one database are measured on one connection: sizes in one query,
 * counts in statements of up to COUNT_BATCH tables. A schema whose tables a session holds in
 * ACCESS EXCLUSIVE mode (its tenant's own lock, or a migration's) is not waited for past
 * USAGE_LOCK_WAIT_MS per statement: it comes back `unmeasured`, naming the holder, and the
 * other schemas of the database are measured all the same.
 *
 * The `usage` of the own-placement kind (driver-kinds.ts).
 *
 * @module
 */
import type pg from 'pg';
import { isLockTimeout } from '../copy/load-lock-wait.js';
import { literal, qualified } from '../sql.js';
import { exclusiveLockHolders, heldReason, withUsageLockWait } from './usage-lock-wait.js';
import { emptyUsage, sampled, type DataUsage, type MeasureOptions } from './usage-types.js';

const COUNT_BATCH = 100;

/** Tries of the whole batch before it falls back to one schema at a time. */
const BATCH_TRIES = 3;

/**
 * Measure the schemas (on a connection to their database). Returns usage per schema; a schema
 * that does not exist is absent; one whose tables stayed locked has `unmeasured` set.
 *
 * @example
 *   (await ownPlacementUsage(c, ['t_acme'], {})).get('t_acme')?.bytes
 */
export async function ownPlacementUsage(
  c: Pick<pg.ClientBase, 'query'>,
  schemas: string[],
  opts: MeasureOptions,
): Promise<Map<string, DataUsage>> {
  return withUsageLockWait(c, async () => {
    const held = new Map<string, string>();
    let rest = schemas;
    // The whole batch on one connection, as long as no lock is in the way. A lock wait running
    // out: the schemas held now are set aside and the rest tried again (a lock that was a
    // migration's moment is gone by then); after that, one schema at a time.
    for (let attempt = 1; attempt <= BATCH_TRIES; attempt++) {
      try {
        return withHeld(await measureSchemas(c, rest, opts), held);
      } catch (err) {
        if (!isLockTimeout(err)) throw err;
      }
      for (const [s, holders] of await exclusiveLockHolders(c, rest)) held.set(s, holders);
      rest = rest.filter((s) => !held.has(s));
    }
    const out = new Map<string, DataUsage>();
    for (const s of rest) {
      try {
        for (const [k, v] of await measureSchemas(c, [s], opts)) out.set(k, v);
      } catch (err) {
        if (!isLockTimeout(err)) throw err;
        held.set(s, (await exclusiveLockHolders(c, [s])).get(s) ?? '');
      }
    }
    return withHeld(out, held);
  });
}

/** The measured schemas, and the held ones as unmeasured (zero, with the reason). */
function withHeld(measured: Map<string, DataUsage>, held: Map<string, string>): Map<string, DataUsage> {
  for (const [s, holders] of held) measured.set(s, { ...emptyUsage(), unmeasured: heldReason(holders) });
  return measured;
}

/** Sizes in one query, counts in batches: the statements each wait at most the session's lock_timeout. */
async function measureSchemas(c: Pick<pg.ClientBase, 'query'>, schemas: string[], opts: MeasureOptions): Promise<Map<string, DataUsage>> {
  if (schemas.length === 0) return new Map();
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
