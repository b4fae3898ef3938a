import type { Config } from '../config/types.js';
import type { Fleet } from '../fleet/fleet.js';
import { rolePasswordState } from '../placement/credentials.js';
import { ADMIN_DATABASE } from '../placement/databases.js';
import type { MoveEnd } from './plan.js';
import { namesAfter, type NamesAfter } from './names.js';

/**
 * The names after a move switched earlier (`move complete`, a move run again after its switch):
 * `passwordNeeded` only while the role the move made still has no password. `tenant credentials`
 * run since gave it one, and repeating "cannot log in" then told the operator something untrue.
 * An unreachable shard keeps the warning (it cannot be checked).
 */
export async function namesNow(
  deps: { config: Pick<Config, 'servingRole'>; fleet: Fleet },
  slug: string,
  now: MoveEnd,
  before: MoveEnd,
): Promise<NamesAfter> {
  const n = namesAfter(deps.config, slug, now, before, { movedTo: true });
  if (!n.passwordNeeded) return n;
  const state = await deps.fleet.withClient(now.shard, ADMIN_DATABASE, (c) => rolePasswordState(c, n.role)).catch(() => undefined);
  if (!state?.hasPassword) return n;
  const { passwordNeeded: _, ...rest } = n;
  return rest;
}
