import { updateTenant } from '../catalog/tenants.js';
import { TenantctlError } from '../errors.js';
import type { ShardClient } from '../fleet/shard-connections.js';
import { readApplied } from '../migrate/tracking.js';
import { MIGRATION_LOCK_CLASSID } from '../operations/lock-ids.js';
import { xactLockInReach } from '../operations/lock-holder.js';
import type { MoveEnd } from './plan.js';
import type { MoveRun } from './start.js';

/** How long the switch waits for a `migrate up` that is migrating a pool end right now (writes may be fenced meanwhile). */
export const SWITCH_MIGRATION_WAIT_MS = 5_000;

/**
 * A pool end of a move is shared: `migrate up` migrates it for its other tenants while this one
 * moves (it skips only the moving tenant), so the copy, made at the version preflight checked,
 * would miss a column or a data migration applied to the source meanwhile, or land in a target
 * migrated past it. Found with an online move: the values an application wrote into a column
 * added during the move were not copied, and `move complete` dropped the only copy of them.
 *
 * Just before the switch, each pool end's migrations are locked (the migration engine's own
 * per-target lock, target-lock.ts, in a transaction held until `fn`, the catalog switch, has
 * committed: no migration can start there in between) and read again. A version that changed
 * fails the move, which removes its copy and leaves the tenant at the source; the catalog's
 * version of the tenant becomes the source's (its rows were migrated with the pool's).
 */
export async function withPoolVersionsHeld<T>(run: MoveRun, fn: () => Promise<T>): Promise<T> {
  const { plan, pre } = run;
  const wanted = pre.atVersion.map((m) => m.id);
  const ends = [plan.from, plan.to].filter((e) => e.model === 'pool');
  const hold = async (i: number): Promise<T> => {
    if (i === ends.length) return fn();
    const end = ends[i];
    return run.deps.fleet.withTransaction(end.shard, end.database, async (c) => {
      await lockMigrations(c, end);
      const now = (await readApplied(c, [end.schema])).map((a) => a.name);
      if (now.join() !== wanted.join()) await changed(run, end, now, wanted);
      return hold(i + 1);
    });
  };
  return hold(0);
}

async function lockMigrations(c: ShardClient, end: MoveEnd): Promise<void> {
  await xactLockInReach(
    c,
    MIGRATION_LOCK_CLASSID,
    end.schema,
    `pool ${end.target}, which migrate up is migrating (the move did not switch: run it again once that is done),`,
    SWITCH_MIGRATION_WAIT_MS,
  );
}

async function changed(run: MoveRun, end: MoveEnd, now: string[], wanted: string[]): Promise<never> {
  const { plan } = run;
  const at = (ids: string[]) => ids.at(-1) ?? 'no migration';
  const source = end === plan.from;
  // The tenant's rows at the source were migrated with the pool: the catalog says so.
  if (source) await updateTenant(run.deps.db, plan.tenant, { schema_version: now.at(-1) ?? null });
  throw new TenantctlError(
    'MOVE_FAILED',
    `the ${source ? 'source' : 'target'} pool ${end.target} was migrated while ${plan.tenant} moved (now at ${at(now)}; the copy was made at ${at(wanted)}): nothing was switched, the copy was removed and ${plan.tenant} stays at ${plan.from.target}`,
    `run the move again: it copies the tenant at the pool's new version`,
  );
}
