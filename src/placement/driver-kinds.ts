import type { Config } from '../config/types.js';
import type { Fleet } from '../fleet/fleet.js';
import type { ShardClient } from '../fleet/shard-connections.js';
import { keyCondition } from './key-filter.js';
import { scopedTablesInOrder } from './scoped-tables.js';
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

/** Shared tables: the tenant is its key, so its rows are filtered by it and its tables are the scoped ones. */
export const sharedTablesKind = {
  kind: 'shared-tables',
  keyFilter: keyCondition,
  scopedTables: scopedTablesInOrder,
  moveTarget: sharedTablesMoveTarget,
} as const satisfies Partial<SharedTablesDriver>;

/** A placement of its own: every row and every scoped table of it is the tenant's; nothing to filter, fence policies to prepare or RLS to check. */
export const ownPlacementKind = {
  kind: 'own-placement',
  keyFilter: () => null,
  scopedTables: scopedTablesInOrder,
  async assertCopyAllowed() {},
  async prepareFence() {},
  moveTarget: ownPlacementMoveTarget,
} as const satisfies Partial<OwnPlacementDriver>;

/** Bytes of one schema's relations (a schema tenant's placement). */
export async function schemaBytes(c: Pick<ShardClient, 'query'>, schema: string): Promise<number> {
  const { rows } = await c.query<{ b: string | null }>(
    `select sum(pg_total_relation_size(c.oid))::text as b from pg_class c join pg_namespace n on n.oid = c.relnamespace
      where n.nspname = $1 and c.relkind in ('r', 'm', 't')`,
    [schema],
  );
  return Number(rows[0].b ?? 0);
}
