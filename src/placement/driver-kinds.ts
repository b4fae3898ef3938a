import type { Config } from '../config/types.js';
import type { Fleet } from '../fleet/fleet.js';
import { keyCondition } from './key-filter.js';
import { scopedTablesInOrder } from './scoped-tables.js';
import { sharedTablesUsage } from './shared-tables-usage.js';
import { ownPlacementUsage } from './own-placement-usage.js';
import { roleSettingBytes } from './role-setting-bytes.js';
import { tenantRoleName } from './naming.js';
import { emptyUsage, type DataUsage } from './usage-types.js';
import { ownPlacementMoveTarget, sharedTablesMoveTarget } from './move-target.js';
import type { CreateAtVersionSteps, OwnPlacementDriver, PlacedTenant, PlacementDriver, SharedTablesDriver } from './types.js';

// What every driver of one kind does alike, so each model's driver states only what is its own.

/**
 * Create a placement at a migration version: prepare, migrations, finish in ONE transaction when
 * the driver can (`createInOneTransaction`) and every migration allows it, else step by step
 * (each step idempotent).
 */
export async function createAtVersion(
  d: PlacementDriver,
  fleet: Fleet,
  config: Config,
  t: PlacedTenant,
  steps: CreateAtVersionSteps,
): Promise<{ oneTransaction: boolean }> {
  if (d.createInOneTransaction && steps.oneTransaction) {
    await d.createInOneTransaction(fleet, config, t, {
      before: steps.before,
      inside: async (c) => {
        await steps.afterPrepare?.();
        await steps.migrate(c, true);
      },
    });
    return { oneTransaction: true };
  }
  await d.prepare(fleet, config, t);
  await steps.afterPrepare?.();
  await fleet.withClient(t.shard, t.database_name, (c) => steps.migrate(c, false));
  await d.finish(fleet, config, t);
  return { oneTransaction: false };
}

/** Each tenant's usage is its key's in a pass over the whole shared schema (none: zero). */
function usageOfPass(tenants: PlacedTenant[], byKey: Map<string, DataUsage>): Map<string, DataUsage> {
  return new Map(tenants.map((t) => [t.slug, byKey.get(t.key) ?? emptyUsage()]));
}

/** Shared tables: the tenant is its key, so its rows are filtered by it and its tables are the scoped ones. */
export const sharedTablesKind = {
  kind: 'shared-tables',
  keyFilter: keyCondition,
  scopedTables: scopedTablesInOrder,
  // Every tenant of a shared schema at once: one pass over each table, grouped by the key.
  usageGroup: (t) => `${t.database_name}/${t.schema_name}`,
  async usage(c, config, tenants, opts) {
    return usageOfPass(tenants, await sharedTablesUsage(c, config, tenants[0].schema_name, opts));
  },
  usageOfPass,
  moveTarget: sharedTablesMoveTarget,
} as const satisfies Partial<SharedTablesDriver>;

/** A placement of its own: every row and every scoped table of it is the tenant's; nothing to filter, fence policies to prepare or RLS to check. */
export const ownPlacementKind = {
  kind: 'own-placement',
  keyFilter: () => null,
  scopedTables: scopedTablesInOrder,
  async assertCopyAllowed() {},
  async prepareFence() {},
  // Every schema of one database on one connection (sizes in one query, counts in batches).
  usageGroup: (t) => t.database_name,
  async usage(c, _config, tenants, opts) {
    const bySchema = await ownPlacementUsage(
      c,
      tenants.map((t) => t.schema_name),
      opts,
    );
    // What the tenant's role keeps in settings of its own is its storage too (role-setting-bytes.ts).
    const kept = await roleSettingBytes(
      c,
      tenants.map((t) => tenantRoleName(t.slug)),
    );
    return new Map(
      tenants.map((t) => {
        const u = bySchema.get(t.schema_name) ?? emptyUsage();
        const extra = kept.get(tenantRoleName(t.slug)) ?? 0;
        return [t.slug, extra > 0 && !u.unmeasured ? { ...u, bytes: u.bytes + extra } : u];
      }),
    );
  },
  moveTarget: ownPlacementMoveTarget,
} as const satisfies Partial<OwnPlacementDriver>;
