import { xactLockInReach } from '../../operations/lock-holder.js';
import type pg from 'pg';
import { POOL_SUSPEND_LOCK_CLASSID } from '../../operations/lock-ids.js';
import type { Config } from '../../config/types.js';
import { ident, literal, qualified } from '../../sql.js';
import { MOVE_FENCE, RESTORE_FENCE, type FenceReason } from '../fence-reasons.js';
import { ensureKeyWritePolicies } from './key-write-policies.js';
import { FENCE_SCHEMA } from './fence-schema.js';

type Queryable = Pick<pg.ClientBase, 'query'>;

export { FENCE_SCHEMA };
/** First key of the advisory lock a pool tenant's fence holds ('tfnc'); the second is hashtext(key). */
export const FENCE_LOCK_CLASSID = 0x74666e63;
/**
 * Held beside the fence lock by a `restore --replace` ('tfrs', hashtext(key)): only its presence
 * is read, when a write has already been refused, to say which operation refused it.
 */
export const RESTORE_FENCE_LOCK_CLASSID = 0x74667273;
/** Restrictive policies per pool table, one per write command (reads are never fenced). */
export const FENCE_POLICIES = {
  insert: 'tenantctl_fence_insert',
  update: 'tenantctl_fence_update',
  delete: 'tenantctl_fence_delete',
} as const;
/** SQLSTATE of a fenced write: read_only_sql_transaction, which applications already treat as "retry later". */
export const FENCE_SQLSTATE = '25006';

/**
 * The pool's managed fence state: a function `tenantctl_fence.check_writable(key)` and, on every
 * tenant-scoped table, three RESTRICTIVE policies (insert, update, delete) calling it for the
 * session's own tenant's rows. A tenant is fenced while a tenantctl session holds the EXCLUSIVE
 * advisory lock ('tfnc', hashtext(key)) in the pool database; every write of that tenant takes
 * the SHARED transaction-level lock through the policy, so:
 *  - taking the fence waits for the tenant's in-flight writes to commit (nothing written before
 *    the fence is missed by the snapshot taken after it);
 *  - a write under the fence fails at once with SQLSTATE 25006 and a message saying why;
 *  - reads are untouched (no SELECT policy), and so are other tenants (the policy only looks at
 *    rows whose key is the session's tenant setting);
 *  - the fence cannot outlive its holder: a killed mover's session ends and the lock with it.
 * RESTRICTIVE, so they only narrow what the permissive `tenantctl_isolation` allows (rls.ts
 * ignores them). Idempotent; creates only what is missing.
 */
export async function ensurePoolFence(
  c: Queryable,
  schema: string,
  config: Pick<Config, 'tenantKey' | 'rls' | 'servingRole'>,
): Promise<string[]> {
  // One setup of the pool's write policies at a time per pool database, the suspension's included
  // (suspend.ts takes the same key; the caller's transaction holds it): operations on different
  // tenants of one pool (a move, a restore --replace, a delete that suspends first) each install
  // policies on the shared tables, and in different orders PostgreSQL saw deadlocks.
  await xactLockInReach(c, POOL_SUSPEND_LOCK_CLASSID, null, "the pool's write policies");
  await c.query(`create schema if not exists ${ident(FENCE_SCHEMA)}`);
  await c.query(`grant usage on schema ${ident(FENCE_SCHEMA)} to public`);
  // SECURITY DEFINER: the serving role's writes take the lock as its owner, the shard role, so a
  // cluster may take the advisory-lock functions away from PUBLIC (closed-functions.ts).
  await c.query(`
    create or replace function ${qualified(FENCE_SCHEMA, 'check_writable')}(k text) returns boolean
      language plpgsql volatile security definer set search_path = pg_catalog as $fn$
    begin
      if k is null or pg_try_advisory_xact_lock_shared(${FENCE_LOCK_CLASSID}, hashtext(k)) then return true; end if;
      -- Refused: only now is it asked why (a restore holds its own lock too), off the writes' path.
      if not pg_try_advisory_xact_lock_shared(${RESTORE_FENCE_LOCK_CLASSID}, hashtext(k)) then
        raise exception ${literal(RESTORE_FENCE.message)} using errcode = '${FENCE_SQLSTATE}', hint = ${literal(RESTORE_FENCE.hint)};
      end if;
      raise exception ${literal(MOVE_FENCE.message)} using errcode = '${FENCE_SQLSTATE}', hint = ${literal(MOVE_FENCE.hint)};
    end $fn$`);
  // Every write of the pool calls it, as the serving role; it only takes this pool's fence locks.
  await c.query(`grant execute on function ${qualified(FENCE_SCHEMA, 'check_writable')}(text) to public`);
  return ensureKeyWritePolicies(c, schema, config, FENCE_POLICIES, qualified(FENCE_SCHEMA, 'check_writable'));
}

/**
 * Take a pool tenant's fence on this session (waits up to `timeoutMs` for the tenant's in-flight
 * writes). Held until releasePoolFence or the end of the session. A restore's reason lock is
 * taken first, so no write is ever refused by it with the move's message.
 */
export async function takePoolFence(c: Queryable, key: string, timeoutMs: number, reason: FenceReason = MOVE_FENCE): Promise<void> {
  await c.query(`set lock_timeout = ${Math.max(1, Math.floor(timeoutMs))}`);
  try {
    if (reason.kind === 'restore') await c.query('select pg_advisory_lock($1, hashtext($2))', [RESTORE_FENCE_LOCK_CLASSID, key]);
    await c.query('select pg_advisory_lock($1, hashtext($2))', [FENCE_LOCK_CLASSID, key]);
  } finally {
    await c.query('reset lock_timeout');
  }
}

export async function releasePoolFence(c: Queryable, key: string, reason: FenceReason = MOVE_FENCE): Promise<void> {
  await c.query('select pg_advisory_unlock($1, hashtext($2))', [FENCE_LOCK_CLASSID, key]);
  if (reason.kind === 'restore') await c.query('select pg_advisory_unlock($1, hashtext($2))', [RESTORE_FENCE_LOCK_CLASSID, key]);
}

/**
 * The sessions holding the tenant's write lock (its writes' shared lock, or another fence), as
 * ` (pid 123 app_user, application acme; …)`: what a fence that waited in vain names. The
 * application_name is what the session said it is (a pool tenant's URL sets its slug). '' when none.
 */
export async function poolFenceHolders(c: Queryable, key: string): Promise<string> {
  try {
    const { rows } = await c.query<{ pid: number; usename: string | null; app: string | null; mode: string }>(
      `select l.pid, a.usename, nullif(a.application_name, '') as app, l.mode
         from pg_locks l left join pg_stat_activity a on a.pid = l.pid
        where l.locktype = 'advisory' and l.classid = $1::int::oid and l.objid = hashtext($2)::oid and l.granted
          and l.pid <> pg_backend_pid() and l.database = (select oid from pg_database where datname = current_database())
        order by l.pid limit 4`,
      [FENCE_LOCK_CLASSID, key],
    );
    if (rows.length === 0) return '';
    const shown = rows.slice(0, 3).map((r) => `pid ${r.pid}${r.usename ? ` ${r.usename}` : ''}${r.app ? `, application ${r.app}` : ''}`);
    return ` (held by ${shown.join('; ')}${rows.length > 3 ? '; …' : ''})`;
  } catch {
    return '';
  }
}

/** Is the pool tenant fenced right now (by any session)? */
export async function poolFenceHeld(c: Queryable, key: string): Promise<boolean> {
  const r = await c.query<{ held: boolean }>(
    `select exists (select 1 from pg_locks where locktype = 'advisory' and classid = $1::int::oid and objid = hashtext($2)::oid
       and objsubid = 2 and mode = 'ExclusiveLock' and granted and database = (select oid from pg_database where datname = current_database())) as held`,
    [FENCE_LOCK_CLASSID, key],
  );
  return r.rows[0].held;
}
