import type pg from 'pg';
import type { Config } from '../../config/types.js';
import { ident, literal, qualified } from '../../sql.js';
import { FENCE_SCHEMA, FENCE_SQLSTATE } from './fence.js';
import { ensureKeyWritePolicies } from './key-write-policies.js';
import { ensureEpoch, recordEpoch, staleSnapshotCheck } from './snapshot-epoch.js';
import { ensureFenceFunction } from '../fence-function.js';

type Queryable = Pick<pg.ClientBase, 'query'>;
type FenceConfig = Pick<Config, 'tenantKey' | 'rls' | 'servingRole'>;

/** The table of pool tenants that live somewhere else now: one row per fenced key. */
export const SWITCHED_TABLE = 'switched';
/** The kind of fence change REPEATABLE READ and SERIALIZABLE transactions are told about (snapshot-epoch.ts). */
export const SWITCH_EPOCH = 'switch';
/** Restrictive policies per pool table, one per write command (reads are never fenced). */
export const SWITCH_POLICIES = {
  insert: 'tenantctl_switched_insert',
  update: 'tenantctl_switched_update',
  delete: 'tenantctl_switched_delete',
} as const;

/**
 * The pool's switch fence: a tenant that a move has switched to another placement keeps its rows
 * here until `move complete` removes them, and its application must not write to them any more
 * (nobody would read those writes). Unlike the move's fence (pool-fence.ts, an advisory lock of
 * the mover's session), this one persists: a row per fenced key in `tenantctl_fence.switched`,
 * checked by three RESTRICTIVE policies (insert, update, delete) on every tenant-scoped table.
 *
 * - Fencing or lifting a tenant is a row written, not DDL: no lock on the shared tables, so other
 *   tenants never wait for it.
 * - The policies only look at rows of the session's own tenant (the key equals the setting), so
 *   other tenants and tenantctl's own work (no setting) pass untouched; reads pass (no SELECT
 *   policy), so the application can still read its old rows.
 * - A fenced write fails with SQLSTATE 25006 (read_only_sql_transaction, what a demoted primary
 *   answers) and a message naming where the tenant lives now.
 * - The serving role reads the table under its own row-level security: a session sees only the
 *   row of its own tenant (no SECURITY DEFINER function, nothing another tenant could read).
 * - rls.ts re-applies only its own permissive policies; the pool's migration hook calls this
 *   again after every migration (`ensureSwitchFenceIfUsed`), so tables a migration adds are fenced too.
 * Idempotent; creates only what is missing. Returns the policies added.
 */
export async function ensurePoolSwitchFence(c: Queryable, schema: string, config: FenceConfig): Promise<string[]> {
  const table = qualified(FENCE_SCHEMA, SWITCHED_TABLE);
  const ownKey = `nullif(current_setting(${literal(config.rls.setting)}, true), '')::${config.tenantKey.type}::text`;
  // VOLATILE (below): its query takes a snapshot of its own. STABLE read the switched table with the
  // statement's snapshot, so an INSERT that began before the switch committed, checked after the
  // move's write fence lifted (tenantctl_fence_* is checked first: restrictive policies go by name),
  // passed both and landed at the source after the switch (fault-kill, fresh90).
  // Made once: DDL on the table would lock out every fenced check (each pool write of a tenant reads it).
  const made = await c.query<{ t: string | null }>('select to_regclass($1) as t', [`${FENCE_SCHEMA}.${SWITCHED_TABLE}`]);
  if (!made.rows[0].t) {
    await c.query(`create schema if not exists ${ident(FENCE_SCHEMA)}`);
    await c.query(`grant usage on schema ${ident(FENCE_SCHEMA)} to public`);
    await c.query(`create table if not exists ${table} (
        key text primary key, tenant text not null, lives_at text not null, since timestamptz not null default now())`);
    await c.query(`alter table ${table} enable row level security`);
    await c.query(`create policy tenantctl_own_key on ${table} for select to public using (key = ${ownKey})`);
    await c.query(`grant select on ${table} to public`);
  }
  await ensureEpoch(c, FENCE_SCHEMA, SWITCH_EPOCH);
  // A REPEATABLE READ or SERIALIZABLE transaction reads the table with its transaction's snapshot,
  // VOLATILE or not: one that began before a switch (having only read, so the move's write fence
  // did not wait for it) would write at the source after it (snapshot-epoch.ts).
  const body = `
    declare s record; x xid8;
    begin
      if k is null then return true; end if;
      select tenant, lives_at into s from ${table} where key = k;
      if not found then${staleSnapshotCheck(FENCE_SCHEMA, SWITCH_EPOCH, 'a tenant of this pool moved or was deleted')}
        return true;
      end if;
      if s.lives_at = '' then
        raise exception '% was deleted: this pool no longer takes writes of its key', s.tenant
          using errcode = '${FENCE_SQLSTATE}',
                hint = format('the tenant is gone from the catalog; tenantctl backup list %s shows its final backup, unless it was deleted with --skip-backup', s.tenant);
      end if;
      raise exception '% has moved: it lives at % now; this placement no longer takes its writes', s.tenant, s.lives_at
        using errcode = '${FENCE_SQLSTATE}',
              hint = format('connect with what tenantctl resolve %s prints', s.tenant);
    end`;
  // Replaced only when it differs: two switches of one pool at once both replaced it, and one
  // failed "tuple concurrently updated" (two moves of one pool's tenants at once).
  await ensureFenceFunction(c, 'check_not_switched', body, { args: 'k text', returns: 'boolean', volatile: true });
  return ensureKeyWritePolicies(c, schema, config, SWITCH_POLICIES, qualified(FENCE_SCHEMA, 'check_not_switched'));
}

/**
 * After a pool migration, inside its transaction: the switch fence's policies on the tables the
 * migration made, when the pool has ever fenced a tenant (else nothing, and no DDL).
 */
export async function ensureSwitchFenceIfUsed(c: Queryable, schema: string, config: FenceConfig): Promise<string[]> {
  const r = await c.query<{ t: string | null }>('select to_regclass($1) as t', [`${FENCE_SCHEMA}.${SWITCHED_TABLE}`]);
  if (!r.rows[0].t) return [];
  return ensurePoolSwitchFence(c, schema, config);
}

/**
 * Fence a pool tenant that lives at `livesAt` now (idempotent). The key is stored as the key
 * column's type prints it, so the policies compare like with like.
 */
export async function fenceSwitchedKey(
  c: Queryable,
  schema: string,
  config: FenceConfig,
  f: { key: string; tenant: string; livesAt: string },
): Promise<void> {
  await ensurePoolSwitchFence(c, schema, config);
  await writeSwitchedRow(c, config, f);
}

/**
 * The fenced key's row (the table and its policies exist): a row, never DDL on the shared tables.
 * Inside the switch's transaction: switches of one pool are serialised (a lock on the switched
 * table that only tenantctl's writes take; a tenant may read it, which does not conflict) and
 * each records its transaction id, so a snapshot that sees the latest switch sees every earlier one.
 */
async function writeSwitchedRow(c: Queryable, config: FenceConfig, f: { key: string; tenant: string; livesAt: string }): Promise<void> {
  await recordEpoch(c, FENCE_SCHEMA, SWITCH_EPOCH, qualified(FENCE_SCHEMA, SWITCHED_TABLE));
  await c.query(
    `insert into ${qualified(FENCE_SCHEMA, SWITCHED_TABLE)} (key, tenant, lives_at) values ($1::${config.tenantKey.type}::text, $2, $3)
       on conflict (key) do update set tenant = excluded.tenant, lives_at = excluded.lives_at, since = now()`,
    [f.key, f.tenant, f.livesAt],
  );
}

/**
 * A deleted pool tenant's key stays refused in its pool (`lives_at` empty: "was deleted"): its
 * application, still connected with the key, would otherwise write rows no tenant owns, missing
 * from the final backup. The pool's next tenant of that key (a create with `--key`, a restore of
 * the final backup, a move in) lifts it (`unfenceSwitchedKey` in the pool driver's prepare).
 * Call `prepareFence` for the pool first.
 */
export async function fenceDeletedKey(c: Queryable, config: FenceConfig, key: string, tenant: string): Promise<void> {
  // The table and its policies were made before the delete (the pool driver's prepareFence, serialised and
  // retried on deadlock): here only a row is written, inside the delete's transaction, no DDL.
  await writeSwitchedRow(c, config, { key, tenant, livesAt: '' });
}

/** Lift a pool tenant's switch fence (idempotent; a pool that never had one is fine). */
export async function unfenceSwitchedKey(c: Queryable, config: Pick<Config, 'tenantKey'>, key: string): Promise<void> {
  const r = await c.query<{ t: string | null }>('select to_regclass($1) as t', [`${FENCE_SCHEMA}.${SWITCHED_TABLE}`]);
  if (!r.rows[0].t) return;
  await c.query(`delete from ${qualified(FENCE_SCHEMA, SWITCHED_TABLE)} where key = $1::${config.tenantKey.type}::text`, [key]);
}
