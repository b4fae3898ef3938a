import { createHash } from 'node:crypto';
import { sql } from 'kysely';
import type { CatalogDb } from '../catalog/open.js';
import type { TenantSelector } from '../catalog/tenants.js';
import { UsageError } from '../errors.js';
import { PARTITION_LOCK_CLASSID } from '../operations/lock-ids.js';
import { textArrayParam } from '../pg-array.js';
import { sliceLoads, splitByCost } from './partition-split.js';
import { inPartition, type MigratePlan, type Partition } from './plan.js';

/** How long a recorded split is kept: a re-run of the same pipeline a few days later reuses it. */
const KEEP_DAYS = 7;

export interface PartitionChoice {
  partition: Partition;
  /** The CI matrix's key (`--partition-key`, TENANTCTL_PARTITION_KEY, or the pipeline's id). */
  key?: string;
  /** The job's selectors: every job of one matrix must pass the same. */
  selector?: TenantSelector;
  /** The newest migration's id (the split of a matrix without a key is recorded under it). */
  head?: string | null;
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
 * Keep the targets of slice I of N, dealt out by expected cost (partition-split.ts). The first
 * job of the matrix records the split in the catalog (under a transaction lock on the key) and
 * every other job reads it, so the union of the N jobs is exactly one run even when they start
 * one after another (each job's run rewrites the costs the split is dealt by) or a tenant comes
 * or goes between their starts; a target the record does not know (a tenant made or moved
 * since) is taken by the first job that sees it, recorded (a dry run: the stable hash of its id). The key is the matrix's (`--partition-key`, or the CI pipeline's id);
 * without one, the migrations' head and the selectors, which every job of one matrix shares. A
 * job whose selectors differ from the recording job's is refused (exit 2): it would read a split
 * of other targets and leave tenants out.
 *
 * @example
 *   const { plan: mine, info } = await partitionPlan(db, plan, { partition: { index: 2, count: 4 }, key: 'github:acme/app#9' });
 */
export async function partitionPlan(
  db: CatalogDb,
  plan: MigratePlan,
  choice: PartitionChoice,
): Promise<{ plan: MigratePlan; info: PartitionInfo }> {
  const { partition } = choice;
  const selector = selectorText(choice.selector ?? {});
  const key = splitKey(choice, selector);
  const compute = async (): Promise<Computed> => {
    const costs = await targetCosts(
      db,
      plan.targets.map((t) => t.id),
    );
    const known = [...costs.values()].sort((a, b) => a - b);
    const fallback = known.length > 0 ? known[Math.floor(known.length / 2)] : 1;
    const costed = plan.targets.map((t) => ({ id: t.id, shard: t.shard, cost: Math.max(1, costs.get(t.id) ?? fallback) }));
    const slices = splitByCost(costed, partition.count);
    return { slices, loads: sliceLoads(costed, slices, partition.count) };
  };
  const recorded = await agreedSplit(
    db,
    { key, selector },
    { count: partition.count, index: partition.index, ids: plan.targets.map((t) => t.id) },
    compute,
    choice.dryRun ?? false,
  );
  const mine = (id: string) => {
    const s = recorded.slices.get(id);
    return s === undefined ? inPartition(id, partition) : s === partition.index;
  };
  return {
    plan: { targets: plan.targets.filter((t) => mine(t.id)), skipped: plan.skipped.filter((s) => mine(s.target)) },
    info: {
      index: partition.index,
      count: partition.count,
      split: recorded.recorded ? 'recorded' : 'computed',
      key: choice.key ?? null,
      ...(recorded.loads ? { loads: recorded.loads } : {}),
    },
  };
}

/** A split this job dealt out itself, with each slice's expected cost. */
interface Computed {
  slices: Map<string, number>;
  loads: number[];
}

/**
 * The key a split is recorded under: the matrix's, or without one the head and a digest of the
 * selection (a --tenant list of thousands of slugs would not fit the catalog's index on the key;
 * the whole selection is kept beside the split, where it is compared).
 */
export function splitKey(choice: Pick<PartitionChoice, 'key' | 'head'>, selector: string): string {
  return choice.key ?? `head ${choice.head ?? '-'} ${createHash('sha256').update(selector).digest('hex').slice(0, 16)}`;
}

/** The longest partition key taken (a pipeline id is far shorter; the catalog indexes the key). */
export const MAX_PARTITION_KEY = 200;

/**
 * A partition key as given (`from` names where: the flag or the variable), refused (exit 2) when
 * empty or longer than MAX_PARTITION_KEY.
 */
export function checkPartitionKey(key: string, from: string): string {
  if (key.trim() === '' || key.length > MAX_PARTITION_KEY) {
    throw new UsageError(
      'USAGE',
      `${from} must be 1 to ${MAX_PARTITION_KEY} characters, got ${key.trim() === '' ? 'an empty value' : `${key.length}`}`,
      'use the CI pipeline\'s id, the same in every job of the matrix, e.g. --partition-key "$CI_PIPELINE_ID"',
    );
  }
  return key;
}

const SELECTOR_FLAGS: Record<keyof TenantSelector, string> = {
  tenants: '--tenant',
  model: '--model',
  region: '--region',
  shard: '--shard',
  tier: '--tier',
  status: '--status',
};

/** The selectors as one text that is equal for equal selections (keys and values sorted). */
export function selectorText(s: TenantSelector): string {
  const out: Record<string, string[]> = {};
  for (const k of Object.keys(SELECTOR_FLAGS).sort() as (keyof TenantSelector)[]) {
    const v = s[k];
    if (v && v.length > 0) out[k] = [...new Set(v)].sort();
  }
  return JSON.stringify(out);
}

/** A selectorText as the flags that give it, for messages. */
function selectorFlags(text: string): string {
  const s = JSON.parse(text) as Record<keyof TenantSelector, string[]>;
  const values = (v: string[]) => (v.length > 5 ? `${v.slice(0, 5).join(',')},… (${v.length} values)` : v.join(','));
  const flags = (Object.keys(s) as (keyof TenantSelector)[]).map((k) => `${SELECTOR_FLAGS[k]} ${values(s[k])}`);
  return flags.length > 0 ? flags.join(' ') : 'no selector (every tenant)';
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

/**
 * Read the split recorded under the key, or record this job's (not on a dry run). A split
 * recorded by a job with other selectors is refused.
 */
async function agreedSplit(
  db: CatalogDb,
  rec: { key: string; selector: string },
  job: { count: number; index: number; ids: string[] },
  compute: () => Promise<Computed>,
  dryRun: boolean,
): Promise<Partial<Computed> & { slices: Map<string, number>; recorded: boolean }> {
  const { count } = job;
  return db.transaction().execute(async (tx) => {
    await sql`select pg_advisory_xact_lock(${PARTITION_LOCK_CLASSID}::int, hashtext(${rec.key}))`.execute(tx);
    const rows = await tx
      .selectFrom('migrate_partitions')
      .select(['target', 'slice', 'selector'])
      .where('key', '=', rec.key)
      .where('slice_count', '=', count)
      .execute();
    if (rows.length > 0) {
      const theirs = rows[0].selector;
      if (theirs !== null && theirs !== rec.selector) {
        throw new UsageError(
          'USAGE',
          `the split of partition key ${JSON.stringify(rec.key)} (${count} jobs) was recorded by a job with ${selectorFlags(theirs)}; this job has ${selectorFlags(rec.selector)}: its slice would be of other targets and leave tenants out; nothing was changed`,
          'pass the same selectors in every job of the matrix, or another --partition-key for another selection',
        );
      }
      const slices = new Map(rows.map((r) => [r.target, r.slice]));
      // A target the split does not know (a tenant moved or made since it was dealt out): the
      // first job to see it takes it, recorded under the same lock, so no slice leaves it out
      // (by hash it could fall to a job that already ran) and no two run it.
      const late = job.ids.filter((id) => !slices.has(id));
      if (late.length > 0 && !dryRun) {
        await sql`
          insert into migrate_partitions (key, slice_count, target, slice, selector)
          select ${rec.key}, ${count}, t, ${job.index}, ${rec.selector} from unnest(${late}::text[]) as t
          on conflict do nothing`.execute(tx);
        for (const id of late) slices.set(id, job.index);
      }
      return { slices, recorded: true };
    }
    const computed = await compute();
    const { slices } = computed;
    if (dryRun || slices.size === 0) return { ...computed, recorded: false };
    await sql`delete from migrate_partitions where created_at < now() - make_interval(days => ${KEEP_DAYS})`.execute(tx);
    await sql`
      insert into migrate_partitions (key, slice_count, target, slice, selector)
      select ${rec.key}, ${count}, t, s, ${rec.selector} from unnest(${[...slices.keys()]}::text[], ${[...slices.values()]}::int[]) as x(t, s)`.execute(
      tx,
    );
    return { ...computed, recorded: true };
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
