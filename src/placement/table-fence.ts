import type pg from 'pg';
import { ident, literal, qualified } from '../sql.js';
import { FENCE_SCHEMA, FENCE_SQLSTATE } from './pool/fence.js';
import { MOVE_FENCE, type FenceReason } from './fence-reasons.js';
import { ensureFenceFunction } from './fence-function.js';

type Queryable = Pick<pg.ClientBase, 'query'>;

/** The statement-level trigger that refuses writes on every table of a fenced schema or database tenant. */
export const FENCE_TRIGGER = 'tenantctl_fence';

/** The statement trigger that refuses writes on every table of a schema or database tenant's old placement (table-switch-fence.ts). */
export const SWITCH_TRIGGER = 'tenantctl_switched';

/**
 * Fence a schema or database tenant: a BEFORE INSERT/UPDATE/DELETE/TRUNCATE statement trigger on
 * every table of its schema raising SQLSTATE 25006 with the reason's message and hint (trigger
 * arguments: the function is shared by every tenant of the database), so the application
 * gets a clear error while its reads go on. CREATE TRIGGER takes a SHARE ROW EXCLUSIVE lock, so
 * it waits for the tenant's in-flight writes (up to `timeoutMs`): after the commit, nothing can
 * still be writing. The placement belongs to this tenant alone, so no other tenant is touched.
 * Persistent (it survives a killed mover): the move records it and every later move command
 * lifts it. Run inside a transaction.
 */
export async function fenceTables(c: Queryable, schema: string, timeoutMs: number, reason: FenceReason = MOVE_FENCE): Promise<string[]> {
  await ensureFenceFunction(
    c,
    'refuse_write',
    // Where the switch fence is up too (a move killed after its switch, or one whose lift gave
    // up), it speaks: "has moved: it lives at …" tells the application to resolve again, "paused"
    // would have it retry here for ever. Statement triggers fire in name order, this one first;
    // its NULL lets the next one raise.
    `
    begin
      if exists (select 1 from pg_catalog.pg_trigger where tgrelid = tg_relid and tgname = ${literal(SWITCH_TRIGGER)} and tgenabled <> 'D') then
        return null;
      end if;
      raise exception '%', coalesce(tg_argv[0], ${literal(MOVE_FENCE.message)})
        using errcode = '${FENCE_SQLSTATE}', hint = coalesce(tg_argv[1], ${literal(MOVE_FENCE.hint)});
    end `,
  );
  const tables = await schemaTables(c, schema);
  await lockForFence(c, schema, tables, timeoutMs);
  for (const t of tables) {
    await c.query(`drop trigger if exists ${ident(FENCE_TRIGGER)} on ${qualified(schema, t)}`);
    await c.query(
      `create trigger ${ident(FENCE_TRIGGER)} before insert or update or delete or truncate on ${qualified(schema, t)}
         for each statement execute function ${qualified(FENCE_SCHEMA, 'refuse_write')}(${literal(reason.message)}, ${literal(reason.hint)})`,
    );
  }
  return tables;
}

/** One attempt's longest wait for a table's lock: well under deadlock_timeout (1 s by default). */
const FENCE_LOCK_ATTEMPT_MS = 200;

/**
 * Every table's SHARE ROW EXCLUSIVE lock (what CREATE TRIGGER takes), waiting for the tenant's
 * in-flight writes up to `timeoutMs`. Taken table by table while holding the earlier ones, a
 * long wait would deadlock with an application transaction that wrote one table and goes on to
 * another (PostgreSQL then kills one of the two: the application's, or the fence's). So each
 * attempt waits at most FENCE_LOCK_ATTEMPT_MS per table, which gives up before any deadlock is
 * detected, releases what it took (its savepoint) and tries again after a short pause; the
 * application is never the one stopped. At `timeoutMs` the last attempt's lock timeout (55P03)
 * is thrown, as one long wait's was.
 */
export async function lockForFence(c: Queryable, schema: string, tables: string[], timeoutMs: number): Promise<void> {
  if (tables.length === 0) return;
  const deadline = Date.now() + Math.max(1, timeoutMs);
  const list = tables.map((t) => qualified(schema, t)).join(', ');
  for (let attempt = 1; ; attempt++) {
    const left = deadline - Date.now();
    await c.query(`set local lock_timeout = ${Math.max(1, Math.min(FENCE_LOCK_ATTEMPT_MS, Math.floor(left)))}`);
    await c.query('savepoint tenantctl_fence_lock');
    try {
      await c.query(`lock table ${list} in share row exclusive mode`);
      await c.query('release savepoint tenantctl_fence_lock');
      break;
    } catch (err) {
      await c.query('rollback to savepoint tenantctl_fence_lock');
      const code = (err as { code?: string }).code;
      if ((code !== '55P03' && code !== '40P01') || Date.now() >= deadline) throw err;
      await new Promise((r) => setTimeout(r, Math.min(20 * attempt, 100)));
    }
  }
  // The triggers' own statements find the locks held; a wait past this point is a bug, not a fence.
  await c.query(`set local lock_timeout = ${Math.max(1, Math.floor(timeoutMs))}`);
}

/** Lift the fence: drop the trigger (or `trigger`, another fence's) wherever it is (idempotent; a missing schema is fine). */
export async function unfenceTables(c: Queryable, schema: string, trigger = FENCE_TRIGGER): Promise<number> {
  const { rows } = await c.query<{ table: string }>(
    `select c.relname as table from pg_trigger g join pg_class c on c.oid = g.tgrelid join pg_namespace n on n.oid = c.relnamespace
      where n.nspname = $1 and g.tgname = $2`,
    [schema, trigger],
  );
  for (const r of rows) await c.query(`drop trigger if exists ${ident(trigger)} on ${qualified(schema, r.table)}`);
  return rows.length;
}

/** How many of the schema's tables carry the fence trigger (move status, for a fence whose mover is gone). */
export async function countFenceTriggers(c: Queryable, schema: string, trigger = FENCE_TRIGGER): Promise<number> {
  const { rows } = await c.query<{ n: number }>(
    `select count(*)::int as n from pg_trigger g join pg_class c on c.oid = g.tgrelid join pg_namespace n on n.oid = c.relnamespace
      where n.nspname = $1 and g.tgname = $2`,
    [schema, trigger],
  );
  return rows[0]?.n ?? 0;
}

/** Ordinary and partitioned tables of the schema (partitions inherit the parent's statement triggers only for their own statements, so each gets one). */
export async function schemaTables(c: Queryable, schema: string): Promise<string[]> {
  const { rows } = await c.query<{ table: string }>(
    `select c.relname as table from pg_class c join pg_namespace n on n.oid = c.relnamespace
      where n.nspname = $1 and c.relkind in ('r', 'p') order by c.relname`,
    [schema],
  );
  return rows.map((r) => r.table);
}
