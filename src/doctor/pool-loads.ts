import type { Fleet } from '../fleet/fleet.js';
import type { Shard } from '../config/types.js';
import { ADMIN_DATABASE } from '../placement/databases.js';
import { poolLoadRole, poolLoadWhy } from '../copy/pool-load-path.js';
import type { Check } from './types.js';

/**
 * Which way moves and restores into a pool on this shard check foreign keys (src/copy/pool-load.ts),
 * why, and how to get the faster way: the same words the move's report gives for the path it took.
 * Informational: both ways are correct; the grant only makes pool loads faster.
 */
export async function poolLoadsCheck(fleet: Fleet, shard: Shard): Promise<Check> {
  const role = await fleet.withClient(shard.name, ADMIN_DATABASE, poolLoadRole);
  return {
    check: `pool loads on ${shard.name}`,
    ok: true,
    detail: `pool loads check foreign keys ${role.may ? 'once per tenant' : 'row by row'}: ${poolLoadWhy(role)}`,
  };
}
