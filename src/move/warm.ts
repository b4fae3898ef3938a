import type { Fleet } from '../fleet/fleet.js';
import { drivers } from '../placement/drivers.js';
import type { MovePlan } from './plan.js';
import { LOAD_PARTS } from './pool-split.js';

/**
 * Open at once, before the preflight, the connections an offline move into shared tables takes
 * one after another later: at the source its reads and write fence, the copy's snapshot and the
 * second part's reader (pool-split.ts); at the target its reads and load, and the second part's
 * load. Each opened on demand cost one connection set-up in sequence (~5 of them, 30–80 ms each
 * on a busy machine) between the preflight and the first row; here they overlap each other and
 * the shards' reachability check, and go back idle for the move to reuse.
 *
 * Never waits for the budget (tryAcquire) and leaves one slot free on each shard (the maintenance
 * database's check, the tenant's own reads), so it takes nothing a move would otherwise get. A
 * connection that fails to open is only not warmed: the step that needs it reports the failure.
 * A new placement's target does not exist yet: nothing is warmed for it.
 */
export async function warmMoveConnections(fleet: Fleet, plan: MovePlan): Promise<void> {
  await drivers[plan.to.model].moveTarget<unknown>({
    sharedTables: () =>
      Promise.all([
        warm(fleet, plan.from.shard, plan.from.database, LOAD_PARTS + 1),
        warm(fleet, plan.to.shard, plan.to.database, LOAD_PARTS),
      ]),
    ownPlacement: async () => undefined,
  });
}

async function warm(fleet: Fleet, shard: string, database: string, n: number): Promise<void> {
  const conns = fleet.connections(shard);
  // tryAcquire counts each connection as open before its first await: these calls cannot overshoot.
  const want = Math.max(0, Math.min(n, conns.budget - conns.openCount - 1));
  const got = await Promise.allSettled(Array.from({ length: want }, () => conns.tryAcquire(database)));
  for (const g of got) if (g.status === 'fulfilled' && g.value) conns.release(g.value);
}
