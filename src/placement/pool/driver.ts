import { searchPathSetting } from '../target-search-path.js';
import { boundLockWait, isLockTimeout, LOAD_LOCK_WAIT_MS, lockWaitError } from '../../copy/load-lock-wait.js';
import { ensureSchema, qualified } from '../../sql.js';
import { ensureDatabase } from '../databases.js';
import { grantConnect } from '../roles.js';
import { forgetPoolSuspension, setPoolSuspended } from './suspend.js';
import { inTransaction } from '../../fleet/fleet.js';
import { ensureServingRole } from './rls.js';
import { scopedTablesInOrder } from '../scoped-tables.js';
import { databaseExists, ensureAdminSeesAll, poolKeyRows, rowsWithKey } from './rows.js';
import { TenantctlError } from '../../errors.js';
import { poolMigration } from '../migration-hooks.js';
import type { SharedTablesDriver } from '../types.js';
import { createAtVersion, sharedTablesKind } from '../driver-kinds.js';
import { keyCondition } from '../key-filter.js';
import { POOL_SCHEMA } from '../naming.js';
import { assertPoolCopyAllowed } from './visibility.js';
import { ensurePoolFence } from './fence.js';
import { ensurePoolSwitchFence, fenceDeletedKey, unfenceSwitchedKey } from './switch-fence.js';
import { withPolicyDdl } from './policy-transaction.js';
import { assertPoolKeyType } from './key-type.js';

/** How long a suspend or resume tries to install the pool's suspension policy before it stops (LOCKED). */
const SUSPEND_POLICY_WAIT_MS = 30_000;

export const pool: SharedTablesDriver = {
  model: 'pool',
  ...sharedTablesKind,
  fence: { write: 'advisory', switch: 'key' },
  migration: poolMigration,
  names: (_slug, dbs) => ({ database: dbs.poolDatabase, schema: POOL_SCHEMA }),
  createAtVersion: (fleet, config, t, steps) => createAtVersion(pool, fleet, config, t, steps),
  async assertCopyAllowed(c, schema, config, mode) {
    // A config whose key type changed after the pool was made (a create, a restore and a move in meet it earlier, in poolKeyRows).
    await assertPoolKeyType(c, schema, schema, config);
    await assertPoolCopyAllowed(c, schema, config, mode);
  },
  async prepareFence(fleet, config, at, lockTimeoutMs) {
    // The move's fence and the switch fence, once per pool (idempotent): the DDL on the shared
    // tables happens here, before the tenant's writes are blocked, never while they are.
    // CREATE POLICY locks the shared table: never queue every tenant behind a long transaction for it.
    await withPolicyDdl(fleet, at, `installing the pool's fence policies on ${at.shard}`, lockTimeoutMs, async (c) => {
      await ensurePoolFence(c, at.schema, config);
      await ensurePoolSwitchFence(c, at.schema, config);
    });
  },
  async prepare(fleet, config, t) {
    await ensureDatabase(fleet, t.shard, t.database_name);
    await fleet.withClient(t.shard, t.database_name, async (c) => {
      await ensureServingRole(c, config);
      await inTransaction(c, () => grantConnect(c, t.database_name, config.servingRole.name));
      await ensureSchema(c, t.schema_name);
      // The key arrives here (a create, a restore, a move in): a fence its earlier tenant left in
      // this pool (deleted, or moved away and completed) no longer applies. A row, not DDL.
      if (t.key) await unfenceSwitchedKey(c, config, t.key);
    });
  },
  async finish() {
    // migrateTarget re-applies the row-level-security policies and serving-role grants.
  },
  async remove(fleet, config, t, opts) {
    if (!(await databaseExists(fleet, t.shard, t.database_name))) return;
    const ms = opts?.lockWaitMs ?? LOAD_LOCK_WAIT_MS;
    await fleet
      .withTransaction(t.shard, t.database_name, async (c) => {
        // A neighbour's table lock must not hold a failed move's cleanup (or a delete) forever.
        await boundLockWait(c, ms);
        // The pool's own triggers fire on these deletes: with the path they were written for.
        await c.query(`select ${searchPathSetting(t.schema_name)}`);
        // tenantctl's role must see every row, or the delete would match nothing and "succeed".
        await ensureAdminSeesAll(c, t.schema_name, config);
        const tables = await scopedTablesInOrder(c, t.schema_name, config);
        // Children before parents, so foreign keys never block the delete. The key is cast to the
        // column's type (not the column to text) so the tenant-key indexes serve the delete.
        for (const { table, column } of [...tables].reverse()) {
          await c.query(
            `delete from ${qualified(t.schema_name, table)} where ${keyCondition(column, config.tenantKey.type, { param: '$1' })}`,
            [t.key],
          );
        }
        // Proof, in the same transaction: nothing with the key is left anywhere.
        const left = await rowsWithKey(c, tables, t.schema_name, t.key, config);
        if (left.length === 0) await forgetPoolSuspension(c, config, t.key);
        // A deleted tenant's application may still be connected with the key: its writes stay refused.
        if (left.length === 0 && opts?.deleted) await fenceDeletedKey(c, config, t.key, t.slug);
        if (left.length > 0) {
          throw new TenantctlError(
            'DELETE_INCOMPLETE',
            `rows with key ${t.key} are still in ${left.map((l) => `${t.schema_name}.${l.table} (${l.rows})`).join(', ')} after the delete; nothing was deleted`,
            'check the row-level security of those tables (tenantctl doctor), then run the delete again',
          );
        }
      })
      .catch(async (err) => {
        if (!isLockTimeout(err)) throw err;
        const what = `removing ${t.slug}'s rows`;
        const at = { schema: t.schema_name, shard: t.shard, ms, code: 'DELETE_INCOMPLETE' as const, what };
        throw await fleet.withClient(t.shard, t.database_name, (c) => lockWaitError(err, c, at)).catch((e) => e);
      });
  },
  removeKeepingRole(fleet, config, t) {
    // No role of its own: the tenant's rows go, as in remove.
    return pool.remove(fleet, config, t);
  },
  async undoCreate() {
    // Nothing is made for a pool tenant outside a transaction.
  },
  async keyRows(fleet, config, t) {
    return poolKeyRows(fleet, config, t);
  },
  async setLogin() {
    // The serving role is shared by every pool tenant: a pool tenant's access is its key.
  },
  async setSuspended(fleet, config, t, suspended) {
    // The first suspension of a pool installs its policy on every shared table (DDL): bounded like the fences'.
    const at = { shard: t.shard, database: t.database_name, schema: t.schema_name };
    const what = `${suspended ? 'suspending' : 'resuming'} ${t.slug || t.key} (the suspension's policy on the pool's tables)`;
    await withPolicyDdl(fleet, at, what, SUSPEND_POLICY_WAIT_MS, (c) => setPoolSuspended(c, t.schema_name, config, t, suspended));
    return null;
  },
  async existing() {
    return [];
  },
};
