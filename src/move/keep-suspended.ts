import type { Config } from '../config/types.js';
import type { Fleet } from '../fleet/fleet.js';
import { drivers } from '../placement/drivers.js';
import type { MovePlan } from './plan.js';

/**
 * A suspended tenant stays suspended where it moves: its new placement is suspended (the target
 * pool refuses its key, or the target role loses LOGIN) before the catalog switches to it, so the
 * application is never let in by a move. Nothing to do for an active tenant. A failure fails the
 * move before the switch, whose undo removes the target (and a pool target forgets the key with
 * its rows).
 */
export async function keepSuspended(fleet: Fleet, config: Config, plan: MovePlan, prevStatus: string): Promise<void> {
  if (prevStatus !== 'suspended') return;
  const to = plan.to;
  await drivers[to.model].setSuspended(
    fleet,
    config,
    { slug: plan.tenant, key: plan.key, model: to.model, shard: to.shard, database_name: to.database, schema_name: to.schema },
    true,
  );
}
