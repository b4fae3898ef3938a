/**
 * Suspension of pool tenants. A pool tenant has no role of its own (the serving role is shared),
 * so suspending it cannot take a LOGIN away: its rows are made unreachable instead. The pool
 * database keeps the suspended keys in `tenantctl_suspend.suspended`, and every tenant-scoped
 * table and partition gets one RESTRICTIVE policy, `tenantctl_suspended`, whose expression is
 * `(select tenantctl_suspend.check_active())`: an InitPlan, evaluated once per statement, that
 * reads the session's tenant setting and raises (SQLSTATE 42501, "tenant acme (key 42) is suspended") when
 * that key is suspended. So a suspended tenant's reads and writes are refused with a message,
 * other tenants pay one index lookup per statement, and tenantctl's own work (no setting, or the
 * tables' owner, which RLS skips) is untouched.
 *
 * Persistent, unlike the move fence (pool-fence.ts): it is data, not a lock. rls.ts re-applies
 * only its own permissive policies, so the restrictive one survives `migrate up`; the pool's
 * migration hooks (migration-hooks.ts) add it to tables and partitions later migrations create,
 * once the pool has ever had a suspension (`installed`). Nothing is installed before the first
 * suspend, so a fleet that never suspends pays nothing.
 *
 * @example
 *   await inTransaction(c, () => setPoolSuspended(c, 'app', config, { key, slug: 'acme' }, true));
 *
 * @module
 */
import { xactLockInReach } from '../../operations/lock-holder.js';
import type pg from 'pg';
import type { Config } from '../../config/types.js';
import { POOL_SUSPEND_LOCK_CLASSID } from '../../operations/lock-ids.js';
import { ident, literal, qualified } from '../../sql.js';
import { rlsState } from './rls.js';
import { ensureEpoch, recordEpoch, staleSnapshotCheck } from './snapshot-epoch.js';

type Queryable = Pick<pg.ClientBase, 'query'>;
type SuspendConfig = Pick<Config, 'tenantKey' | 'rls' | 'servingRole'>;

export const SUSPEND_SCHEMA = 'tenantctl_suspend';
export const SUSPEND_TABLE = 'suspended';
/** The restrictive policy on every tenant-scoped table and partition of a pool. */
export const SUSPEND_POLICY = 'tenantctl_suspended';
/** SQLSTATE of a suspended tenant's statement: insufficient_privilege, as a refused grant. */
export const SUSPEND_SQLSTATE = '42501';

const CHECK_FN = qualified(SUSPEND_SCHEMA, 'check_active');
/** The kind of fence change REPEATABLE READ and SERIALIZABLE transactions are told about (snapshot-epoch.ts). */
const SUSPEND_EPOCH = 'suspend';

/** The session setting as the key column's type, back to text: one spelling per key (a uuid in capitals is the same tenant). */
function settingKey(config: SuspendConfig): string {
  return `(nullif(current_setting(${literal(config.rls.setting)}, true), '')::${config.tenantKey.type})::text`;
}

/** The key as stored in the suspended table: the same canonical text. */
function storedKey(config: SuspendConfig): string {
  return `($1::${config.tenantKey.type})::text`;
}

// The message names the tenant by its slug (what operators and `tenant resume` know it by), the
// key beside it; a row suspended before the slug was kept says the key alone.
function checkFunctionBody(config: SuspendConfig): string {
  return `
declare k text := ${settingKey(config)}; sl text; x xid8;
begin
  if k is null then return true; end if;
  select s.slug into sl from ${qualified(SUSPEND_SCHEMA, SUSPEND_TABLE)} s where s.key = k;
  if not found then${staleSnapshotCheck(SUSPEND_SCHEMA, SUSPEND_EPOCH, 'a tenant of this pool was suspended')}
    return true;
  end if;
  raise exception 'tenant % is suspended: its rows cannot be read or written', coalesce(sl || ' (key ' || k || ')', k)
    using errcode = '${SUSPEND_SQLSTATE}',
          hint = 'tenantctl tenant resume ' || coalesce(sl, '<slug>') || ' lets it back in, unless it is being deleted (tenantctl tenant show ' || coalesce(sl, '<slug>') || ')';
end`;
}

/** Has this pool database ever had a suspension (the table exists)? */
export async function poolSuspendInstalled(c: Queryable): Promise<boolean> {
  const r = await c.query<{ t: string | null }>('select to_regclass($1) as t', [`${SUSPEND_SCHEMA}.${SUSPEND_TABLE}`]);
  return r.rows[0].t !== null;
}

/** Tables (partitions included) of the pool schema without the suspension policy. */
async function tablesWithoutPolicy(c: Queryable, schema: string, config: SuspendConfig): Promise<string[]> {
  const tables = (await rlsState(c, schema, config)).map((s) => s.table);
  const { rows } = await c.query<{ table: string }>(
    `select c.relname as table from pg_policy p join pg_class c on c.oid = p.polrelid
       join pg_namespace n on n.oid = c.relnamespace where n.nspname = $1 and p.polname = $2`,
    [schema, SUSPEND_POLICY],
  );
  const have = new Set(rows.map((r) => r.table));
  return tables.filter((t) => !have.has(t));
}

/** Upkeep due: the pool has had a suspension and some table lacks the policy (a migration added it). */
export async function poolSuspendNeedsApply(c: Queryable, schema: string, config: SuspendConfig): Promise<boolean> {
  if (!(await poolSuspendInstalled(c))) return false;
  return (await tablesWithoutPolicy(c, schema, config)).length > 0;
}

/**
 * Create the suspension state where missing: schema, table (row-level security: the serving
 * role reads only its own tenant's row), the check function (replaced only when its body
 * changed, e.g. another `rls.setting`) and the policy on every tenant-scoped table and partition.
 * Serialised per pool database by a transaction-level advisory lock: run it inside a transaction.
 * Returns the tables that got the policy.
 */
export async function ensurePoolSuspend(c: Queryable, schema: string, config: SuspendConfig): Promise<string[]> {
  // Never waited on while a tenant's session holds it (tenants can take any advisory lock in the pool database): LOCKED at once, naming it.
  await xactLockInReach(c, POOL_SUSPEND_LOCK_CLASSID, null, "the pool's write policies");
  const s = ident(SUSPEND_SCHEMA);
  const table = qualified(SUSPEND_SCHEMA, SUSPEND_TABLE);
  if (!(await poolSuspendInstalled(c))) {
    await c.query(`create schema if not exists ${s}`);
    await c.query(`grant usage on schema ${s} to public`);
    await c.query(`create table ${table} (key text primary key, since timestamptz not null default now(), slug text)`);
    await c.query(`alter table ${table} enable row level security`);
    await c.query(`create policy own_key on ${table} for select to public using (key = ${settingKey(config)})`);
    await c.query(`grant select on ${table} to public`);
  }
  // Pools suspended before the slug was kept: the column once (the catalog says whether it is there).
  const slugColumn = await c.query(
    `select 1 from pg_attribute where attrelid = to_regclass($1) and attname = 'slug' and not attisdropped`,
    [`${SUSPEND_SCHEMA}.${SUSPEND_TABLE}`],
  );
  if (slugColumn.rowCount === 0) await c.query(`alter table ${table} add column slug text`);
  await ensureEpoch(c, SUSPEND_SCHEMA, SUSPEND_EPOCH);
  const body = checkFunctionBody(config);
  const fn = await c.query<{ src: string }>(
    `select p.prosrc as src from pg_proc p join pg_namespace n on n.oid = p.pronamespace where n.nspname = $1 and p.proname = 'check_active'`,
    [SUSPEND_SCHEMA],
  );
  if (fn.rows[0]?.src !== body) {
    // SECURITY INVOKER: a definer function would be a side door (pool-side-doors.ts revokes those).
    await c.query(
      `create or replace function ${CHECK_FN}() returns boolean language plpgsql stable set search_path = pg_catalog as ${literal(body)}`,
    );
    await c.query(`grant execute on function ${CHECK_FN}() to public`);
  }
  const missing = await tablesWithoutPolicy(c, schema, config);
  for (const t of missing) {
    await c.query(
      `create policy ${ident(SUSPEND_POLICY)} on ${qualified(schema, t)} as restrictive for all to public
         using ((select ${CHECK_FN}())) with check ((select ${CHECK_FN}()))`,
    );
  }
  return missing;
}

/** Suspend (or resume) a pool tenant's key; `slug` names it in the refusal. Idempotent; run inside a transaction. */
export async function setPoolSuspended(
  c: Queryable,
  schema: string,
  config: SuspendConfig,
  tenant: { key: string; slug: string },
  suspended: boolean,
): Promise<void> {
  const { key, slug } = tenant;
  if (!suspended && !(await poolSuspendInstalled(c))) return;
  await ensurePoolSuspend(c, schema, config);
  const table = qualified(SUSPEND_SCHEMA, SUSPEND_TABLE);
  if (suspended) {
    // A REPEATABLE READ or SERIALIZABLE transaction of the tenant begun before this commit would
    // read on past it with its old snapshot: told to retry (snapshot-epoch.ts). Suspensions of one
    // pool are serialised (tenants may only read the table: their lock does not conflict).
    await recordEpoch(c, SUSPEND_SCHEMA, SUSPEND_EPOCH, table);
    await c.query(
      `insert into ${table} (key, slug) values (${storedKey(config)}, nullif($2, '')) on conflict (key) do update set slug = excluded.slug`,
      [key, slug],
    );
  } else await c.query(`delete from ${table} where key = ${storedKey(config)}`, [key]);
}

/** Forget a deleted tenant's suspension, so that its key, re-used, starts active. Inside the delete's transaction. */
export async function forgetPoolSuspension(c: Queryable, config: SuspendConfig, key: string): Promise<void> {
  if (!(await poolSuspendInstalled(c))) return;
  await c.query(`delete from ${qualified(SUSPEND_SCHEMA, SUSPEND_TABLE)} where key = ${storedKey(config)}`, [key]);
}
