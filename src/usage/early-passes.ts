/**
 * `usage`'s shared-table passes, started as soon as the config is read. A pass over a shared
 * schema's tables reads every key whatever the selection, and where it runs (shard, database,
 * schema) follows from the config alone; so the server scans while the catalog connects, the
 * command's modules load and the tenant list comes back, instead of after them (on a small
 * fleet that start-up is as long as the pass). measureUsage joins each pass with its unit's
 * tenants by key; a unit without a pass (or whose pass failed) measures as before.
 *
 * @module
 */
import type { TenantSelector } from '../catalog/tenants.js';
import type { Config, Model } from '../config/types.js';
import { TenantctlError } from '../errors.js';
import type { Fleet } from '../fleet/fleet.js';
import { drivers } from '../placement/drivers.js';
import { sharedTablesUsage } from '../placement/shared-tables-usage.js';
import type { DataUsage, MeasureOptions } from '../placement/usage-types.js';

/**
 * Per usage unit id (`shard/database/schema`): its pass; undefined when it failed (the unit then
 * measures itself), or the pass's LOCKED error (a session held the tables past the wait: the unit
 * reports it rather than wait as long again).
 */
export type EarlyPasses = Map<string, Promise<Map<string, DataUsage> | TenantctlError | undefined>>;

/**
 * Where the selection may hold tenants of shared tables: one group per shard and shared-tables
 * model. None when the selection names tenants or statuses: it may hold no tenant of a shared
 * schema, and a pass would then be a whole table's scan for nothing. Pure.
 */
export function earlyGroups(config: Config, s: TenantSelector): { id: string; shard: string; database: string; schema: string }[] {
  if (s.tenants?.length || s.status?.length) return [];
  const tierModels = s.tier?.length ? new Set(s.tier.map((t) => config.tiers[t]?.model)) : undefined;
  const models = (Object.keys(drivers) as Model[]).filter(
    (m) => drivers[m].kind === 'shared-tables' && (!s.model?.length || s.model.includes(m)) && (!tierModels || tierModels.has(m)),
  );
  const shards = config.shards.filter(
    (sh) => (!s.shard?.length || s.shard.includes(sh.name)) && (!s.region?.length || s.region.includes(sh.region)),
  );
  return shards.flatMap((sh) =>
    // Shared tables' names do not depend on the tenant: any slug names the group's.
    models.map((m) => {
      const { database, schema } = drivers[m].names('', sh);
      return { id: `${sh.name}/${database}/${schema}`, shard: sh.name, database, schema };
    }),
  );
}

/** Start the passes (each on a connection of its shard, within its budget). */
export function startEarlyPasses(deps: { config: Config; fleet: Fleet }, s: TenantSelector, opts: MeasureOptions): EarlyPasses {
  const out: EarlyPasses = new Map();
  for (const g of earlyGroups(deps.config, s)) {
    const pass = deps.fleet.withClient(g.shard, g.database, (c) => sharedTablesUsage(c, deps.config, g.schema, opts));
    // A shard down or a pool database not made yet: the unit, if there is one, reports it itself.
    out.set(
      g.id,
      pass.catch((err) => (err instanceof TenantctlError && err.code === 'LOCKED' ? err : undefined)),
    );
  }
  return out;
}

/** Wait for every pass (used or not) so that no connection is held when the fleet closes. */
export async function settleEarlyPasses(early: EarlyPasses | undefined): Promise<void> {
  await Promise.all(early?.values() ?? []);
}
