import type { Config } from '../config/types.js';
import { applicationNames, type ApplicationNames } from '../placement/resolve.js';
import type { MoveEnd } from './plan.js';

/** The names the tenant's application uses where it lives after a move command, and whether they changed. */
export interface NamesAfter extends ApplicationNames {
  shard: string;
  /** Database, schema and role are those the application used before (a move that kept the model). */
  unchanged: boolean;
  /**
   * The tenant's own role was made new by the move (on another cluster, or out of a pool): it has
   * no password there (a password does not carry over between clusters, a pool tenant had no role,
   * and tenantctl keeps none), so the application cannot log in until `tenant credentials` gives
   * it one.
   */
  passwordNeeded?: true;
}

/**
 * What the application connects with at `now`, compared with `before`: a move that keeps the
 * model keeps every name (naming.ts derives them from the slug and the model alone), so only the
 * host changes; reports print these so nobody has to guess.
 *
 * @example
 *   namesAfter(config, 'acme', plan.to, plan.from) // { shard: 'eu1', database: 'tenant_schemas', schema: 't_acme', role: 'tenant_acme', unchanged: true }
 */
export function namesAfter(
  config: Pick<Config, 'servingRole'>,
  slug: string,
  now: MoveEnd,
  before: MoveEnd,
  o: { movedTo?: boolean } = {},
): NamesAfter {
  const a = applicationNames(config, slug, now);
  const b = applicationNames(config, slug, before);
  const unchanged = a.database === b.database && a.schema === b.schema && a.role === b.role;
  // Only where the move made the role (a rollback goes back to the role it had, password and all):
  // on another cluster, or out of a pool on the same one (a pool tenant has no role of its own).
  const passwordNeeded = o.movedTo === true && now.model !== 'pool' && (now.shard !== before.shard || before.model === 'pool');
  return { shard: now.shard, ...a, unchanged, ...(passwordNeeded ? { passwordNeeded: true as const } : {}) };
}
