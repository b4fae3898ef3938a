import { MIGRATION_LOCK_CLASSID } from '../operations/lock-ids.js';
import type { MigratePlan, PlannedTarget } from './plan.js';
import { byDatabase, readStates, ShardHealth, type TargetState } from './state.js';
import { ensureDurationDefault, ensureTrackingTable } from './tracking.js';
import type { Fleet } from '../fleet/fleet.js';
import type { MigrationFile } from './files.js';

/**
 * The targets' state of a `migrate up` run, read on their shards WHILE the catalog checks the
 * files and records the run (one-version.ts, run-record.ts): the read touches only the shards and
 * the record only the catalog, and each used to wait for the other (at 5,000 schema targets the
 * read is one aggregate over the tracking table, the largest serial step before the first
 * target). Started under the fleet run lock, so no other run changes what it reads.
 *
 * Reading changes nothing; a database of schema targets that was never migrated gets its
 * tracking table only in `ensureTracked`, once the run is recorded (a refused run creates nothing).
 *
 * @module
 */

/**
 * What reading the states needs of a run's deps (`MigrateUpDeps` has both): named here, not
 * imported, because up-context.ts names `StateRead` and the two modules would import each other.
 */
interface StateDeps {
  fleet: Fleet;
  migrations: MigrationFile[];
}

export interface StateRead {
  /** Settles when every database was read; never rejects before someone awaits it (see startStateRead). */
  states: Promise<Map<string, TargetState>>;
  /** Shards found down by the read; the run's targets on them fail at once with the same error. */
  health: ShardHealth;
  /** The databases read, each serving several targets (ensureTracked works on the same groups). */
  groups: PlannedTarget[][];
}

/**
 * Start reading, one query per database that serves several targets; a database with one target
 * (a pool, a database tenant) is read on the connection that would migrate it.
 */
export function startStateRead(deps: StateDeps, plan: MigratePlan, concurrency: number): StateRead {
  const health = new ShardHealth(deps.fleet);
  const groups = byDatabase(plan.targets).filter((g) => g.length > 1);
  const states = readStates(deps.fleet, groups, deps.migrations, { concurrency, health });
  // Awaited by executeRun, or settled by `settle` when the run is refused first: a rejection
  // while the catalog is still busy must not count as unhandled.
  states.catch(() => undefined);
  return { states, health, groups };
}

/** Wait for a read the run no longer needs (refused before it was recorded), ignoring its outcome. */
export async function settle(read: StateRead): Promise<void> {
  await read.states.then(
    () => undefined,
    () => undefined,
  );
}

/**
 * The tracking table of each database of schema targets that has pending work and none yet (the
 * first target would create it anyway), so that every target can go in one round trip; and a
 * table an older tenantctl made gets duration_ms' default (tracking.ts ensureDurationDefault), so
 * that the rows of this run leave the duration out of their text.
 */
export async function ensureTracked(deps: StateDeps, read: StateRead, states: Map<string, TargetState>): Promise<void> {
  for (const group of read.groups) {
    const working = group.flatMap((t) => {
      const s = states.get(t.id);
      return s?.ok && s.report.pending.length > 0 ? [{ t, s }] : [];
    });
    const untracked = working.some(({ s }) => !s.tracked);
    if (!untracked && working.every(({ s }) => s.timed)) continue;
    try {
      const timed = await deps.fleet.withLeafClient(group[0].shard, group[0].database, async (c) => {
        if (untracked) await ensureTrackingTable(c, MIGRATION_LOCK_CLASSID);
        return ensureDurationDefault(c);
      });
      for (const { t, s } of working) states.set(t.id, { ...s, tracked: true, timed });
    } catch {
      // Left to each target's own path, which reports what is wrong.
    }
  }
}
