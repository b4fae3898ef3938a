import type { CatalogDb } from '../catalog/open.js';
import { selectPlannable } from '../catalog/tenants.js';
import { rowTargetId } from '../placement/naming.js';
import { resultDocument } from '../fanout/result.js';
import { acquireRunLock } from '../operations/run-lock.js';
import { refuseTwoVersions } from './one-version.js';
import { partitionPlan } from './partition-agree.js';
import { planTargets, type MigratePlan } from './plan.js';
import { getRun, type RunInfo } from './run-record.js';
import { byDatabase, readStates } from './state.js';
import { driftError } from './target-errors.js';
import { runTargets } from './target-rows.js';
import type { TargetOutcome } from './target-types.js';
import type { MigrateUpDeps, MigrateUpDocument, MigrateUpOptions } from './up-context.js';
import { executeRun } from './up-run.js';
import { settle, startStateRead } from './up-states.js';
import { skippedRow, tenantRows, type MigrateRow } from './up-rows.js';

export type { MigrateUpDeps, MigrateUpDocument, MigrateUpHooks, MigrateUpOptions } from './up-context.js';
export type { MigrateRow } from './up-rows.js';

/**
 * `migrate up` without the CLI: plan the targets, take the fleet run lock, record the run, and
 * migrate every target through the bounded fan-out, one result row per tenant (up-run.ts).
 *
 * Pending work is found with one query per database; targets with nothing pending and no drift
 * finish without a connection of their own and without their lock (pool targets still get the
 * cheap row-level-security check). Each target's state goes to the catalog right after its step
 * finished, with its tenants' schema_version, in batched statements.
 *
 * @example
 *   const { doc } = await migrateUp(deps, { concurrency: 8, selector: { region: ['us-east'] } });
 *   process.exitCode = doc.ok ? 0 : 1;
 */
export async function migrateUp(deps: MigrateUpDeps, opts: MigrateUpOptions): Promise<{ doc: MigrateUpDocument }> {
  const started = Date.now();
  const { db } = deps;
  const head = deps.migrations.at(-1)?.id ?? null;

  const { plan, previous, partition, gone } = await loadPlan(db, opts, head);

  const oneVersion = { ...deps, concurrency: opts.concurrency };
  if (opts.dryRun) {
    await refuseTwoVersions(oneVersion, plan.targets, undefined, { dryRun: true });
    return { doc: await dryRun(deps, opts, plan, started, head) };
  }

  const lock = await acquireRunLock(db, { partition, wait: opts.wait, signal: opts.signal, onWaiting: opts.hooks?.onWaiting });
  try {
    // An edited file is never applied beside its old version (before the run is recorded).
    // The shards are read while the catalog checks the files and records the run (up-states.ts).
    const stateRead = startStateRead(deps, plan, opts.concurrency);
    try {
      await refuseTwoVersions(oneVersion, plan.targets);
    } catch (err) {
      await settle(stateRead);
      throw err;
    }
    return { doc: await executeRun({ deps, opts, plan, lock, previous, gone, started, head, stateRead }) };
  } finally {
    await lock.release();
  }
}

/**
 * Which targets: the selectors, or the remaining/failed targets of an earlier run. The catalog
 * rows are dropped once planned (a fleet of 10,000 tenants would otherwise keep them all, with
 * every column, for the whole run).
 */
async function loadPlan(db: CatalogDb, opts: MigrateUpOptions, head: string | null) {
  let previous: RunInfo | undefined;
  let only: Set<string> | undefined;
  const recorded = new Map<string, string[]>();
  const fromRun = opts.resume ?? opts.onlyFailed;
  if (fromRun !== undefined) {
    previous = await getRun(db, fromRun);
    const rows = (await runTargets(db, fromRun)).filter((r) =>
      opts.resume !== undefined ? r.status !== 'succeeded' : r.status === 'failed',
    );
    only = new Set(rows.map((r) => r.target));
    for (const r of rows) recorded.set(r.target, r.tenants);
  }
  const partition = opts.partition ?? previous?.args.partition ?? undefined;
  const selector = fromRun !== undefined ? {} : (opts.selector ?? {});
  const tenants = await selectPlannable(db, selector);
  // A tenant of the earlier run that moved since lives at another target now: that one is resumed.
  const moved = only ? movedTargets(tenants, recorded, only) : new Set<string>();
  let plan = planTargets(tenants, { only });
  // A slice of N is dealt out by cost over the whole plan, agreed through the catalog by the
  // matrix's jobs (partition-agree.ts). A resumed run already has its own targets.
  if (partition && fromRun === undefined) {
    plan = (await partitionPlan(db, plan, { partition, key: opts.partitionKey, selector, head, dryRun: opts.dryRun })).plan;
  }
  // Targets of the earlier run that are no longer migratable (deleted, or now failed/deleting).
  const planned = new Set(plan.targets.map((t) => t.id));
  const gone = only
    ? [...only].filter((id) => !planned.has(id) && !moved.has(id)).map((id) => ({ id, tenants: recorded.get(id) ?? [] }))
    : [];
  return { plan, previous, partition, gone };
}

/**
 * The targets of an earlier run whose tenants live elsewhere now (moved since): each tenant's
 * target now is added to `only`; returns the old ids, which are not "no longer migratable".
 */
function movedTargets(
  tenants: readonly { slug: string; shard: string; database_name: string; schema_name: string }[],
  recorded: Map<string, string[]>,
  only: Set<string>,
): Set<string> {
  const now = new Map(tenants.map((t) => [t.slug, rowTargetId(t)]));
  const movedFrom = new Set<string>();
  for (const [id, slugs] of recorded) {
    for (const slug of slugs) {
      const at = now.get(slug);
      if (at === undefined || at === id) continue;
      only.add(at);
      movedFrom.add(id);
    }
  }
  return movedFrom;
}

async function dryRun(
  deps: MigrateUpDeps,
  opts: MigrateUpOptions,
  plan: MigratePlan,
  started: number,
  head: string | null,
): Promise<MigrateUpDocument> {
  const states = await readStates(deps.fleet, byDatabase(plan.targets), deps.migrations, { concurrency: opts.concurrency });
  const rows: MigrateRow[] = [];
  const counts = { total: plan.targets.length, upToDate: 0, migrated: 0, failed: 0, notRun: 0, unreachable: 0, gone: 0 };
  for (const t of plan.targets) {
    const s = states.get(t.id)!;
    let outcome: TargetOutcome;
    if (!s.ok) outcome = { target: t.id, status: 'failed', applied: [], pending: [], unknown: [], durationMs: 0, error: s.error };
    else if (s.report.drift.length > 0)
      outcome = {
        target: t.id,
        status: 'failed',
        applied: [],
        pending: [],
        unknown: s.report.unknown,
        durationMs: 0,
        error: driftError(s.report.drift),
      };
    else
      outcome = {
        target: t.id,
        status: 'succeeded',
        applied: [],
        pending: s.report.pending.map((m) => m.id),
        unknown: s.report.unknown,
        durationMs: 0,
      };
    if (outcome.status === 'failed') counts.failed++;
    else if (outcome.pending.length === 0) counts.upToDate++;
    else counts.migrated++;
    rows.push(...tenantRows(t, outcome));
  }
  for (const s of plan.skipped) rows.push(skippedRow(s));
  rows.sort((a, b) => (a.tenant < b.tenant ? -1 : a.tenant > b.tenant ? 1 : 0));
  return resultDocument(deps.command ?? 'migrate up', rows, started, {
    run: null,
    dryRun: true,
    head,
    targets: counts,
    interrupted: false,
  }) as MigrateUpDocument;
}
