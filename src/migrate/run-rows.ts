import { sql, type Kysely } from 'kysely';
import type { CatalogDatabase } from '../catalog/tables.js';
import { migrationHooks } from '../placement/drivers.js';
import { textArrayParam } from '../pg-array.js';
import { settled, unsettle, type Settled } from '../settled.js';
import type { PlannedTarget } from './plan.js';
import { insertTargets, type NewTargetRow } from './target-rows.js';

/**
 * A fresh run's migrate_targets rows (one per target with work), written WHILE the shards are
 * read. Which targets have work is known only from that read, but the catalog already says which
 * tenants are behind the head: the catalog writer keeps each tenant's schema_version. So the rows
 * of the targets the catalog expects to have work go in at once, on the catalog, while the shards
 * answer; once the read is in, the few the catalog got wrong are put right (a row added for a
 * target with unexpected work, removed for one found up to date), before any target starts.
 *
 * Before, the insert (5,000 rows: 77 ms, and 47 ms of this process building them) ran after the
 * read, between it and the first target. Every target still starts only after its run's rows are
 * in the catalog, so `--resume` after a crash finds every target the run had.
 *
 * @example
 *   const early = startRunRows(db, run.id, plan.targets, head);   // right after the run is recorded
 *   const states = await stateRead.states;
 *   const { analyzed } = await finishRunRows(early, work);        // before the first target
 */
export interface RunRows {
  db: Kysely<CatalogDatabase>;
  runId: number;
  /** Each planned target's position in the plan: the rows' `position`, whichever insert writes them. */
  positions: Map<string, number>;
  /** The targets inserted early and the statistics' refresh, or the insert's error. */
  early: Promise<Settled<{ inserted: Set<string>; analyzed: Promise<void> }>>;
}

/**
 * The targets the catalog expects to have work: a model with upkeep always has (the pool's RLS
 * check), and any other target when one of its tenants is not recorded at `head`.
 */
export function expectedWork(targets: PlannedTarget[], head: string | null): PlannedTarget[] {
  return targets.filter((t) => migrationHooks(t.model).needsUpkeep || t.tenants.some((x) => (x.schemaVersion ?? null) !== head));
}

/** Start inserting the rows of the targets expected to have work (never rejects: see finishRunRows). */
export function startRunRows(db: Kysely<CatalogDatabase>, runId: number, targets: PlannedTarget[], head: string | null): RunRows {
  const positions = new Map(targets.map((t, i) => [t.id, i]));
  const expected = expectedWork(targets, head);
  const early = settled(
    insertTargets(db, runId, rowsOf(expected, positions)).then(({ analyzed }) => ({
      inserted: new Set(expected.map((t) => t.id)),
      analyzed,
    })),
  );
  return { db, runId, positions, early };
}

/**
 * Make the run's rows exactly `work`, once the states are read: rows added for targets with work
 * the catalog did not expect, removed for expected ones found up to date (a fresh run keeps no
 * row for those). Throws the early insert's error, as the insert did when it came after the read.
 * `analyzed` settles (never rejects) when the statistics are fresh: what the catalog writer waits for.
 */
export async function finishRunRows(rows: RunRows, work: PlannedTarget[]): Promise<{ analyzed: Promise<void> }> {
  const { inserted, analyzed: first } = unsettle(await rows.early);
  const wanted = new Set(work.map((t) => t.id));
  const unexpected = work.filter((t) => !inserted.has(t.id));
  const upToDate = [...inserted].filter((id) => !wanted.has(id));
  if (upToDate.length > 0) {
    await sql`delete from migrate_targets where run_id = ${rows.runId}::bigint and target = any (${textArrayParam(upToDate)}::text[])`.execute(
      rows.db,
    );
  }
  let analyzed = first;
  if (unexpected.length > 0) {
    const more = await insertTargets(rows.db, rows.runId, rowsOf(unexpected, rows.positions));
    analyzed = Promise.all([analyzed, more.analyzed]).then(() => undefined);
  }
  return { analyzed };
}

/** Wait for the early insert without using it (the run stops before its targets). */
export async function settleRunRows(rows: RunRows): Promise<void> {
  await rows.early;
}

function rowsOf(targets: PlannedTarget[], positions: Map<string, number>): NewTargetRow[] {
  return targets.map((t) => ({
    target: t.id,
    position: positions.get(t.id)!,
    model: t.model,
    shard: t.shard,
    database_name: t.database,
    schema_name: t.schema,
    tenants: t.tenants.map((x) => x.slug),
  }));
}
