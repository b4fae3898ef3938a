import type { Config } from '../config/types.js';
import type { Fleet } from '../fleet/fleet.js';
import { drivers, type PlacedTenant } from '../placement/drivers.js';
import type { MoveEnd } from './plan.js';
import { roleCarriesOver } from '../placement/placement.js';

/**
 * Remove the tenant's data at one end of a move (the source at `move complete`, the copy at
 * `move rollback` or after a failed move), through the placement drivers: a pool end loses the
 * tenant's rows (proved gone), a schema or database end is dropped with its tenant role — except
 * that the role stays when the other end is an exclusive placement on the same cluster (roles are
 * cluster-wide: it is the tenant's role there too). Idempotent: a missing placement is fine.
 */
export async function removeEnd(
  deps: { config: Config; fleet: Fleet },
  slug: string,
  key: string,
  end: MoveEnd,
  other: MoveEnd,
  opts: { lockWaitMs?: number } = {},
): Promise<void> {
  const { config, fleet } = deps;
  const placed: PlacedTenant = { slug, key, model: end.model, shard: end.shard, database_name: end.database, schema_name: end.schema };
  const roleShared = roleCarriesOver(other, end);
  if (!roleShared) return drivers[end.model].remove(fleet, config, placed, opts);
  // On the same cluster a move changes the model, so the other end is in another database.
  await drivers[end.model].removeKeepingRole(fleet, config, placed, { roleStaysInDatabase: false });
}
