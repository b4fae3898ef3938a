import type { Config } from '../config/types.js';
import { TenantctlError } from '../errors.js';
import type { Fleet } from '../fleet/fleet.js';
import type { ShardClient } from '../fleet/shard-connections.js';
import { MIGRATION_LOCK_CLASSID } from '../operations/lock-ids.js';
import { drivers, type PlacedTenant } from '../placement/drivers.js';
import { filesUpTo, migrateTarget, runsInOneTransaction } from './apply-target.js';
import type { MigrationFile } from './files.js';
import type { MigrationTarget, TargetOutcome } from './target-types.js';
import { ensureTrackingTable } from './tracking.js';

export interface PlacementAtVersionOptions {
  fleet: Fleet;
  config: Config;
  /** Every migration file; the placement is brought to `upTo` (default: the last one). */
  migrations: MigrationFile[];
  /** The version to create the placement at: a migration id of `migrations`. */
  upTo?: string;
  /** After the placement exists, before it is migrated (inside the transaction when there is one). */
  afterPrepare?(): Promise<void>;
  /**
   * After it is at `upTo`, before the grants: e.g. restore loads its rows here, then calls
   * `migrateTo()` to bring them to head, in the same transaction when there is one.
   */
  afterMigrate?(c: ShardClient, migrateTo: (upTo?: string) => Promise<void>): Promise<void>;
  /** The error a failed migration becomes (default: PROVISION_FAILED, naming what failed). */
  failure?(o: TargetOutcome): Error;
}

/**
 * Create a tenant's placement at migration version `upTo` (default: head). Where the model allows
 * (schema and database tenants, every migration transactional) the placement, its migrations
 * with their tracking rows, the caller's afterMigrate and the grants commit in ONE transaction:
 * a failure or a crash leaves nothing half-made inside the tenant's database. Otherwise (a pool
 * tenant, whose shared target is migrated by the normal engine, or a migration that must run
 * outside a transaction) step by step, each step idempotent. Used by tenant create, restore
 * and move.
 *
 * @example
 *   await createPlacementAtVersion(tenant, { fleet, config, migrations, upTo: '0003_add_invoices' });
 */
export async function createPlacementAtVersion(t: PlacedTenant, o: PlacementAtVersionOptions): Promise<{ oneTransaction: boolean }> {
  const { fleet, config } = o;
  const driver = drivers[t.model];
  const target: MigrationTarget = { model: t.model, shard: t.shard, database: t.database_name, schema: t.schema_name };
  const files = filesUpTo(o.migrations, o.upTo);
  const fail =
    o.failure ??
    ((out: TargetOutcome) =>
      new TenantctlError('PROVISION_FAILED', `migrating the new placement failed: ${out.error?.message ?? 'unknown error'}`));
  const migrate = async (c: ShardClient, upTo: string | undefined, withinTransaction: boolean) => {
    // A tenant's placement is made under its lock (create, move, restore): see tenantLocked.
    const out = await migrateTarget(c, target, o.migrations, { config, withinTransaction, upTo, tenantLocked: true });
    if (out.status === 'failed') throw fail(out);
  };
  // Every file, not only those up to `upTo`: afterMigrate may bring the placement to head inside.
  if (driver.createInOneTransaction && (await runsInOneTransaction(o.migrations))) {
    await driver.createInOneTransaction(fleet, config, t, {
      before: (c) => ensureTrackingTable(c, MIGRATION_LOCK_CLASSID),
      inside: async (c) => {
        await o.afterPrepare?.();
        await migrate(c, files.at(-1)?.id, true);
        await o.afterMigrate?.(c, (upTo) => migrate(c, upTo, true));
      },
    });
    return { oneTransaction: true };
  }
  await driver.prepare(fleet, config, t);
  await o.afterPrepare?.();
  await fleet.withClient(t.shard, t.database_name, async (c) => {
    await migrate(c, files.at(-1)?.id, false);
    await o.afterMigrate?.(c, (upTo) => migrate(c, upTo, false));
  });
  await driver.finish(fleet, config, t);
  return { oneTransaction: false };
}
