import { sql, type Kysely } from 'kysely';
import type { CatalogDatabase, MigrateTargetRow, MigrateTargetStatus } from '../catalog/tables.js';
import { intArrayParam, textArrayLiteral, textArrayParam } from '../pg-array.js';

/** The migrate_targets rows of a run: one per target that had work, updated as each finishes. */

/** The targets of a run, in plan order. */
export async function runTargets(db: Kysely<CatalogDatabase>, id: number): Promise<MigrateTargetRow[]> {
  const rows = await db.selectFrom('migrate_targets').selectAll().where('run_id', '=', id).orderBy('position').execute();
  return rows.map((r) => ({ ...r, run_id: Number(r.run_id) }));
}

export interface NewTargetRow {
  target: string;
  position: number;
  model: string;
  shard: string;
  database_name: string;
  schema_name: string;
  tenants: string[];
}

/**
 * Record the targets that have work, all 'pending', in one statement per 5,000. Column arrays
 * unnested side by side, not a JSON document: at 5,000 targets PostgreSQL's jsonb_to_recordset
 * took 0.2 s of the insert's 0.55 s under load, before the first target could start. A plain
 * insert: the run is new and a plan names each target once, so there is no conflict to skip,
 * and ON CONFLICT's speculative insertion cost 30–40% more per row (5,000 rows, bench/README.md).
 *
 * `analyzed` settles (never rejects) once a large run's statistics are fresh (see below); the
 * caller's first targets need not wait for it, only the catalog writer's first statement does
 * (CatalogWriter.waitFor): 20 ms less before the first target of a 5,000-target run.
 */
export async function insertTargets(
  db: Kysely<CatalogDatabase>,
  runId: number,
  rows: NewTargetRow[],
): Promise<{ analyzed: Promise<void> }> {
  for (let i = 0; i < rows.length; i += 5000) {
    const chunk = rows.slice(i, i + 5000);
    // Each column as array text built here (pg-array.ts), not a JS array for pg to serialize.
    const col = (k: 'target' | 'model' | 'shard' | 'database_name' | 'schema_name') => textArrayParam(chunk.map((r) => r[k]));
    await sql`
      insert into migrate_targets (run_id, target, position, model, shard, database_name, schema_name, tenants, status)
      select ${runId}, x.target, x.position, x.model, x.shard, x.database_name, x.schema_name, x.tenants::text[], 'pending'
        from unnest(${col('target')}::text[], ${intArrayParam(chunk.map((r) => r.position))}::int[], ${col('model')}::text[],
                    ${col('shard')}::text[], ${col('database_name')}::text[], ${col('schema_name')}::text[],
                    ${textArrayParam(chunk.map((r) => textArrayLiteral(r.tenants)))}::text[])
          as x(target, position, model, shard, database_name, schema_name, tenants)`.execute(db);
  }
  // Until autovacuum gets to it, the planner believes the new run has no rows and has the
  // catalog writer find each batch's targets by scanning every row of the run (a run over 5,000
  // targets then grew with the square). Fresh statistics after the bulk insert, as PostgreSQL's
  // docs advise; a small run is cheap to scan either way. Only run_id's: that estimate alone
  // decides the plan, and the whole table's (text arrays, JSON errors, every past run's rows)
  // took 0.45 s of a 5,000-target run before its first target started (0.11 s for run_id).
  // Statistics only steer plans: a failure here costs the writer time, not the run.
  const analyzed =
    rows.length >= ANALYZE_AFTER
      ? sql`analyze migrate_targets (run_id)`.execute(db).then(
          () => undefined,
          () => undefined,
        )
      : Promise.resolve();
  return { analyzed };
}

/** Runs with this many targets refresh migrate_targets' statistics once their rows are in. */
const ANALYZE_AFTER = 500;

/** Counts of the run's target rows by status (for the run's final status after a resume). */
export async function runTargetCounts(db: Kysely<CatalogDatabase>, runId: number): Promise<Record<MigrateTargetStatus, number>> {
  const rows = await db
    .selectFrom('migrate_targets')
    .select(['status', sql<number>`count(*)::int`.as('n')])
    .where('run_id', '=', runId)
    .groupBy('status')
    .execute();
  const out: Record<MigrateTargetStatus, number> = { pending: 0, succeeded: 0, failed: 0, not_run: 0 };
  for (const r of rows) out[r.status] = r.n;
  return out;
}

/**
 * The last finished state (succeeded or failed) of each target, over all runs: one row per target
 * in migrate_target_last (kept by the catalog's trigger), however long the history.
 */
export async function lastRunByTarget(
  db: Kysely<CatalogDatabase>,
  targets: string[],
): Promise<Map<string, { runId: number; status: MigrateTargetStatus; error: unknown; finishedAt: Date | null }>> {
  const out = new Map<string, { runId: number; status: MigrateTargetStatus; error: unknown; finishedAt: Date | null }>();
  if (targets.length === 0) return out;
  const rows = await sql<{ target: string; run_id: string; status: MigrateTargetStatus; error: unknown; finished_at: Date | null }>`
    select target, run_id, status, error, finished_at
      from migrate_target_last
     where target = any(${textArrayParam(targets)}::text[])`.execute(db);
  for (const r of rows.rows) out.set(r.target, { runId: Number(r.run_id), status: r.status, error: r.error, finishedAt: r.finished_at });
  return out;
}
