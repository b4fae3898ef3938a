import { sql } from 'kysely';
import type { CatalogDb } from '../catalog/open.js';
import { PARTITION_LOCK_CLASSID } from '../operations/lock-ids.js';
import { textArrayParam } from '../pg-array.js';
import { splitByCost } from './partition-split.js';
import { inPartition, type MigratePlan, type Partition } from './plan.js';

/** How long a recorded split is kept: a re-run of the same pipeline a few days later reuses it. */
const KEEP_DAYS = 7;

export interface PartitionChoice {
  partition: Partition;
  /** The CI matrix's key (`--partition-key`, TENANTCTL_PARTITION_KEY, or the pipeline's id). */
  key?: string;
  /** A dry run reads a recorded split but never records one. */
  dryRun?: boolean;
}

/** How the slice was chosen, for the run's document. */
export interface PartitionInfo {
  index: number;
  count: number;
  /** 'recorded': read from (or written to) the catalog under the key; 'computed': this job's own view. */
  split: 'recorded' | 'computed';
  key: string | null;
  /** The expected cost of each slice, in ms of earlier runs (median for targets never timed). */
  loads?: number[];
}

/**
 * Keep the targets of slice I of N, dealt out by expected cost (partition-split.ts). With a key,
 * the first job of the matrix records the split in the catalog (under a transaction lock on the
 * key) and every other job reads it, so the union of the N jobs is exactly one run even when a
 * tenant comes or goes between their starts; targets the record does not know (created since)
 * fall to the stable hash of their id. Without a key each job computes the split from the catalog
 * it reads: the same result while the catalog is the same.
 *
 * @example
 *   const { plan: mine, info } = await partitionPlan(db, plan, { partition: { index: 2, count: 4 }, key: 'github:acme/app#9' });
 */
export async function partitionPlan(
  db: CatalogDb,
  plan: MigratePlan,
  choice: PartitionChoice,
): Promise<{ plan: MigratePlan; info: PartitionInfo }> {
  const { partition, key } = choice;
  const compute = async () => {
    const costs = await targetCosts(
      db,
      plan.targets.map((t) => t.id),
    );
    const known = [...costs.values()].sort((a, b) => a - b);
    const fallback = known.length > 0 ? known[Math.floor(known.length / 2)] : 1;
    const costed = plan.targets.map((t) => ({ id: t.id, shard: t.shard, cost: Math.max(1, costs.get(t.id) ?? fallback) }));
    return { slices: splitByCost(costed, partition.count), costed };
  };
  let slices: Map<string, number>;
  let split: PartitionInfo['split'] = 'computed';
  let loads: number[] | undefined;
  if (key) {
    const recorded = await agreedSplit(db, key, partition.count, compute, choice.dryRun ?? false);
    slices = recorded.slices;
    split = recorded.recorded ? 'recorded' : 'computed';
  } else {
    const c = await compute();
    slices = c.slices;
    loads = new Array<number>(partition.count).fill(0);
    for (const t of c.costed) loads[(slices.get(t.id) ?? 1) - 1] += t.cost;
  }
  const mine = (id: string) => {
    const s = slices.get(id);
    return s === undefined ? inPartition(id, partition) : s === partition.index;
  };
  return {
    plan: { targets: plan.targets.filter((t) => mine(t.id)), skipped: plan.skipped.filter((s) => mine(s.target)) },
    info: { index: partition.index, count: partition.count, split, key: key ?? null, ...(loads ? { loads } : {}) },
  };
}

/**
 * The expected cost of each target: its duration in the newest run that applied something there
 * (migrate_target_last, one row per target, however long the history).
 */
export async function targetCosts(db: CatalogDb, ids: string[]): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (let i = 0; i < ids.length; i += 5000) {
    const res = await sql<{ id: string; ms: number }>`
      select target as id, cost_ms as ms from migrate_target_last
       where target = any(${textArrayParam(ids.slice(i, i + 5000))}::text[]) and cost_ms is not null`.execute(db);
    for (const r of res.rows) out.set(r.id, r.ms);
  }
  return out;
}

/** Read the split recorded under the key, or record this job's (not on a dry run). */
async function agreedSplit(
  db: CatalogDb,
  key: string,
  count: number,
  compute: () => Promise<{ slices: Map<string, number> }>,
  dryRun: boolean,
): Promise<{ slices: Map<string, number>; recorded: boolean }> {
  return db.transaction().execute(async (tx) => {
    await sql`select pg_advisory_xact_lock(${PARTITION_LOCK_CLASSID}::int, hashtext(${key}))`.execute(tx);
    const rows = await tx
      .selectFrom('migrate_partitions')
      .select(['target', 'slice'])
      .where('key', '=', key)
      .where('slice_count', '=', count)
      .execute();
    if (rows.length > 0) return { slices: new Map(rows.map((r) => [r.target, r.slice])), recorded: true };
    const { slices } = await compute();
    if (dryRun || slices.size === 0) return { slices, recorded: false };
    await sql`delete from migrate_partitions where created_at < now() - make_interval(days => ${KEEP_DAYS})`.execute(tx);
    await sql`
      insert into migrate_partitions (key, slice_count, target, slice)
      select ${key}, ${count}, t, s from unnest(${[...slices.keys()]}::text[], ${[...slices.values()]}::int[]) as x(t, s)`.execute(tx);
    return { slices, recorded: true };
  });
}

/**
 * The CI matrix's key when none is given: the pipeline's id from the usual CI variables (the same
 * for every job of one matrix, unlike the job id), or undefined.
 *
 * @example
 *   partitionKeyFromEnv({ GITHUB_REPOSITORY: 'acme/app', GITHUB_RUN_ID: '42', GITHUB_RUN_ATTEMPT: '1' }) // 'github:acme/app#42'
 */
export function partitionKeyFromEnv(env: NodeJS.ProcessEnv): string | undefined {
  if (env.TENANTCTL_PARTITION_KEY) return env.TENANTCTL_PARTITION_KEY;
  if (env.GITHUB_RUN_ID) return `github:${env.GITHUB_REPOSITORY ?? ''}#${env.GITHUB_RUN_ID}`;
  if (env.CI_PIPELINE_ID) return `gitlab:${env.CI_PROJECT_PATH ?? ''}#${env.CI_PIPELINE_ID}`;
  if (env.BUILDKITE_BUILD_ID) return `buildkite:${env.BUILDKITE_BUILD_ID}`;
  if (env.CIRCLE_WORKFLOW_ID) return `circleci:${env.CIRCLE_WORKFLOW_ID}`;
  return undefined;
}
