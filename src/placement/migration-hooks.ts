import type pg from 'pg';
import type { Config } from '../config/types.js';
import { ensurePoolSuspend, poolSuspendInstalled, poolSuspendNeedsApply } from './pool/suspend.js';
import { ensureSwitchFenceIfUsed } from './pool/switch-fence.js';
import { ensureServingRole, repairRlsPolicies, rlsNeedsApply, servingRoleNeedsApply, tenantScopedTables } from './pool/rls.js';

type Queryable = Pick<pg.ClientBase, 'query'>;

type HookConfig = Pick<Config, 'tenantKey' | 'rls' | 'servingRole'>;

/**
 * What the migration engine (src/migrate/) must do differently per isolation model, so that it
 * never asks which model a target is. Exclusive models (schema, database) need nothing; the pool
 * keeps tenantctl's row-level security and the serving role's access around every migration.
 */
export interface MigrationHooks {
  /**
   * One target serves many tenants (the pool): it is migrated whoever comes and goes, under no
   * tenant's lock, and never inside one tenant's transaction.
   */
  readonly shared: boolean;
  /**
   * Nothing of the model runs between the engine's own statements, so the read, each migration,
   * its tracking row, the commit and the unlock may share round trips (one message per target).
   */
  readonly canFuse: boolean;
  /** Upkeep is due even with nothing pending (the pool: its row-level security changed by hand). */
  needsUpkeep?(c: Queryable, schema: string, config: HookConfig): Promise<boolean>;
  /** Once before the first migration or the upkeep, outside a transaction; returns warnings for the report. */
  beforeMigrate?(c: Queryable, config: HookConfig): Promise<string[]>;
  /**
   * Inside each migration's transaction after it ran, and as the upkeep: the pool protects the
   * tables the migration made or changed before anyone sees them. Returns the side doors it
   * closed (named in the report).
   */
  afterMigrate?(c: Queryable, schema: string, config: HookConfig): Promise<string[]>;
  /** The tables the model protects in the target (the pool's tenant-scoped tables), for the report. */
  protectedTables?(c: Queryable, schema: string, config: HookConfig): Promise<string[]>;
}

export const exclusiveMigration: MigrationHooks = { shared: false, canFuse: true };

export const poolMigration: MigrationHooks = {
  shared: true,
  // The serving role is ensured outside a transaction, and each migration's tables are secured
  // between the migration and its commit.
  canFuse: false,
  needsUpkeep: async (c, schema, config) =>
    (await rlsNeedsApply(c, schema, config)) ||
    (await poolSuspendNeedsApply(c, schema, config)) ||
    (await servingRoleNeedsApply(c, config)),
  async beforeMigrate(c, config) {
    const role = await ensureServingRole(c, config);
    return role.bypassesRls
      ? [`serving role ${config.servingRole.name} is SUPERUSER or BYPASSRLS: row-level security does not apply to it`]
      : [];
  },
  async afterMigrate(c, schema, config) {
    const { secured } = await repairRlsPolicies(c, schema, config);
    // A pool that has had a suspension keeps it on the tables this migration made (pool-suspend.ts).
    if (await poolSuspendInstalled(c)) await ensurePoolSuspend(c, schema, config);
    // A tenant switched away from this pool stays fenced on the tables a migration adds.
    await ensureSwitchFenceIfUsed(c, schema, config);
    return secured;
  },
  async protectedTables(c, schema, config) {
    return (await tenantScopedTables(c, schema, config)).map((t) => t.table);
  },
};
