import { resultDocument } from '../fanout/result.js';
import { fanout, type FanoutOptions } from '../fanout/run.js';
import { errorMessage, TenantctlError } from '../errors.js';
import { redactText } from '../config/redact.js';
import { isConnectionError } from '../fleet/fleet.js';
import type { TargetError } from './target-types.js';
import { TenantLockBatch } from '../operations/tenant-lock-batch.js';
import { migrationHooks } from '../placement/drivers.js';
import { CatalogWriter } from './catalog-writer.js';
import { fitsOneMessage } from './apply-one-round-trip.js';
import { isLocalShard, localShardMessages } from './local-shard.js';
import { BATCH_FROM, BATCH_SIZE, TargetBatcher } from './target-batcher.js';
import { splitCanaries, type PlannedTarget } from './plan.js';
import { createRun, finishRun, reopenRun, type RunInfo, type RunStatus } from './run-record.js';
import { nothingToDo, type TargetState } from './state.js';
import { runTargetCounts } from './target-rows.js';
import { finishRunRows, settleRunRows, startRunRows } from './run-rows.js';
import { emptyCounts, type MigrateUpDocument, type PlannedRun, type RunState } from './up-context.js';
import { failed, record, skippedRow, targetResult, tenantRows, upToDateOutcome, type MigrateRow, type TargetDone } from './up-rows.js';
import { ensureTracked, settle } from './up-states.js';
import { targetRunner, tenantLockWaitMs, type TargetRunner } from './up-target.js';

/**
 * A planned `migrate up` under the fleet run lock: record the run while every target's state is
 * read (one query per database, started by the caller: up-states.ts), settle the targets with
 * nothing to do, migrate the rest through the bounded fan-out (canaries first), and finish the
 * record and the document.
 */
export async function executeRun(planned: PlannedRun): Promise<MigrateUpDocument> {
  const ctx = await openRun(planned).catch(async (err: unknown) => {
    await settle(planned.stateRead);
    throw err;
  });
  // A fresh run's rows go in while the shards are read (run-rows.ts); every target waits for them.
  const rows = ctx.resuming ? undefined : startRunRows(ctx.deps.db, ctx.run.id, ctx.plan.targets, ctx.head);
  let states: Map<string, TargetState>;
  try {
    states = await planned.stateRead.states;
    await ensureTracked(ctx.deps, planned.stateRead, states);
  } catch (err) {
    if (rows) await settleRunRows(rows);
    throw err;
  }
  const work = settleUpToDate(ctx, states);
  if (rows) ctx.writer.waitFor((await finishRunRows(rows, work)).analyzed);
  ctx.opts.hooks?.onRun?.({
    runId: ctx.run.id,
    resumed: ctx.resuming,
    targets: ctx.plan.targets.length,
    work: work.length,
    upToDate: ctx.counts.upToDate,
    skipped: ctx.plan.skipped.length,
  });
  const locks = await TenantLockBatch.open(ctx.deps.db, {
    command: ctx.command,
    wait: true,
    waitMs: tenantLockWaitMs(ctx),
    signal: ctx.opts.signal,
  });
  // Exclusive targets take their tenant's lock as they start, in the order of the work list. A
  // large run locks the next ones ahead (fewer catalog statements per target); a tenant among
  // them is then "locked by migrate up" a little before its turn, which a small run never needs.
  const exclusive = work.filter((t) => !migrationHooks(t.model).shared).map((t) => t.tenants[0].slug);
  if (exclusive.length >= LOOK_AHEAD_FROM) locks.lookAhead(exclusive);
  ctx.batcher = batcherFor(ctx, work, states);
  try {
    await runWork(ctx, work, targetRunner(ctx, states, locks));
  } finally {
    await locks.close();
  }
  addSkippedAndGone(ctx);
  return finish(ctx);
}

/**
 * Several targets per message when the run has many that fit one (under their tenant's lock, only
 * transactional SQL pending): their messages, results and wake-ups were most of a small target's
 * cost. Small runs keep a message per target.
 */
function batcherFor(ctx: RunState, work: PlannedTarget[], states: Map<string, TargetState>): TargetBatcher | undefined {
  const fits = work.filter((t) => {
    const s = states.get(t.id);
    const hooks = migrationHooks(t.model);
    if (hooks.shared || !s?.ok || s.report.drift.length > 0) return false;
    return fitsOneMessage(hooks, { applied: s.applied, pending: s.report.pending, unknown: s.report.unknown, tracked: s.tracked });
  }).length;
  const size = ctx.opts.batchTargets ?? (fits >= BATCH_FROM ? BATCH_SIZE : 1);
  if (size <= 1) return undefined;
  return new TargetBatcher(ctx.deps.fleet, size, (s) => shardWidth(ctx, s, true), ctx.opts.concurrency);
}

/** Targets of a batched run under their tenant's lock at once, at most (see runWork; MigrateUpOptions.maxTargetsInFlight). */
const MAX_TARGETS_IN_FLIGHT = 1024;

/** Runs with this many schema or database targets lock tenants ahead (TenantLockBatch.lookAhead). */
const LOOK_AHEAD_FROM = 256;

async function openRun(p: PlannedRun): Promise<RunState> {
  const { opts, deps, lock, plan } = p;
  const command = deps.command ?? 'migrate up';
  const resuming = opts.resume !== undefined;
  const counts = emptyCounts(plan.targets.length);
  const run: RunInfo = resuming
    ? await reopenRun(lock, opts.resume!)
    : await createRun(
        lock,
        {
          command,
          head: p.head,
          migrations: deps.migrations.length,
          selector: opts.selector ?? {},
          partition: opts.partition ?? null,
          concurrency: opts.concurrency,
          localShardTargets: opts.localShardTargets ?? null,
          onError: opts.onError ?? 'stop',
          maxFailures: opts.maxFailures ?? null,
          canary: opts.canary ?? 0,
          retryOf: opts.onlyFailed ?? null,
        },
        { ...counts },
      );
  const writer = new CatalogWriter(deps.db, run.id, command, () => ({ ...counts }));
  return { ...p, run, command, resuming, counts, rows: [], writer, health: p.stateRead.health };
}

/**
 * Targets with nothing to do get their rows now (no connection, no lock); the rest is returned
 * as the run's work. A model with upkeep (the pool's RLS check) always has work.
 */
function settleUpToDate(ctx: RunState, states: Map<string, TargetState>): PlannedTarget[] {
  const work: PlannedTarget[] = [];
  for (const t of ctx.plan.targets) {
    const s = states.get(t.id);
    if (s?.ok && nothingToDo(s) && !migrationHooks(t.model).needsUpkeep) {
      ctx.counts.upToDate++;
      const outcome = upToDateOutcome(t, s);
      ctx.rows.push(...tenantRows(t, outcome));
      // No row of its own in a fresh run; the tenants' schema_version still follows the target
      // where the catalog has it wrong.
      if (ctx.resuming || t.tenants.some((x) => x.schemaVersion !== outcome.version)) {
        ctx.writer.push(record(t, { status: ctx.resuming ? 'succeeded' : undefined, outcome }));
      }
    } else {
      work.push(t);
    }
  }
  return work;
}

/** Canaries one at a time (stop on the first failure), then the rest within the fleet's budgets. */
async function runWork(ctx: RunState, work: PlannedTarget[], runner: TargetRunner): Promise<void> {
  const { opts } = ctx;
  const { canaries, rest } = splitCanaries(work, opts.canary ?? 0);
  const canaryFailures = await pass(ctx, runner, canaries, {
    concurrency: 1,
    shardOf: (t) => t.shard,
    shardBudget: () => 1,
    onError: 'stop',
  });
  if (canaryFailures > 0) {
    for (const t of rest) runner.finished(t, notRun(t, 'not run: a canary target failed (--canary)'));
    return;
  }
  // With a batcher, more targets run at once than connections (its slots hold the connections).
  // Each holds its tenant's advisory lock on the one lock session: bounded far below
  // PostgreSQL's lock table (64 × max_connections by default) whatever the concurrency.
  const k = ctx.batcher?.size ?? 1;
  await pass(ctx, runner, rest, {
    concurrency: Math.min(opts.concurrency * k, Math.max(opts.concurrency, opts.maxTargetsInFlight ?? MAX_TARGETS_IN_FLIGHT)),
    shardOf: (t) => t.shard,
    shardBudget: (s) => shardWidth(ctx, s, k > 1) * k,
    onError: opts.onError ?? 'stop',
    maxFailures: opts.maxFailures,
    // The stop policy is about migrations that fail: a shard that does not answer fails its own
    // targets and the run goes on with the other shards.
    countsAsFailure: (r) => r.status === 'failed' && r.error?.code !== 'UNREACHABLE',
    onStop: (reason, failures) => {
      ctx.stopped = { reason: reason.replace(/^not run: /, ''), limit: opts.maxFailures ?? 1, failuresAtStop: failures, failures };
    },
  });
  if (ctx.stopped) ctx.stopped.failures = ctx.counts.failed - ctx.counts.unreachable;
}

/**
 * Connections at once on a shard: its connection budget, and on a shard of this machine the local
 * limit (halved for connections sending shared messages: local-shard.ts).
 */
function shardWidth(ctx: RunState, shardName: string, batched = false): number {
  const budget = ctx.deps.fleet.connections(shardName).budget;
  const local = ctx.opts.localShardTargets;
  if (local === undefined || !isLocalShard(ctx.deps.fleet.shard(shardName))) return budget;
  return Math.max(1, Math.min(budget, batched ? localShardMessages(local) : local));
}

function notRun(t: PlannedTarget, reason: string): TargetDone {
  return { ...targetResult(t), status: 'skipped', reason: reason.startsWith('not run') ? reason : `not run: ${reason}` };
}

/** One fan-out; every target gets finished() exactly once, as it ends or, if never started, after. */
async function pass(
  ctx: RunState,
  runner: TargetRunner,
  items: PlannedTarget[],
  fo: Omit<FanoutOptions<PlannedTarget>, 'onResult' | 'onStart' | 'signal'>,
): Promise<number> {
  const seen = new Set<PlannedTarget>();
  let failures = 0;
  const results = await fanout(
    items,
    {
      ...fo,
      signal: ctx.opts.signal,
      onStart: ctx.opts.hooks?.onTargetStart,
      // Recorded as each target ends, so the catalog follows the run.
      onResult: (t, r) => {
        seen.add(t);
        if (r.status === 'failed') failures++;
        runner.finished(t, r);
      },
    },
    runner.runOne,
    notRun,
    (t, err) => failed(t, thrownTargetError(err), Date.now()),
  );
  // Targets never started (stopped by the failure policy or Ctrl-C) come back only here.
  items.forEach((t, i) => {
    if (!seen.has(t)) runner.finished(t, results[i]);
  });
  return failures;
}

/** Tenants the plan skipped, and targets of an earlier run that are no longer migratable. */
function addSkippedAndGone(ctx: RunState): void {
  for (const s of ctx.plan.skipped) ctx.rows.push(skippedRow(s));
  const skippedSlugs = new Set(ctx.plan.skipped.map((s) => s.tenant.slug));
  for (const g of ctx.gone) {
    const reason = 'no longer migratable: deleted, or provisioning, failed or being deleted';
    for (const slug of g.tenants) if (!skippedSlugs.has(slug)) ctx.rows.push({ tenant: slug, target: g.id, status: 'skipped', reason });
    ctx.writer.push({ target: g.id, status: 'not_run', error: { code: 'GONE', message: reason } });
  }
}

async function finish(ctx: RunState): Promise<MigrateUpDocument> {
  const { writer, run, counts, opts } = ctx;
  await writer.close();
  const interrupted = Boolean(opts.signal?.aborted);
  let status: RunStatus = interrupted ? 'interrupted' : counts.failed + counts.notRun > 0 ? 'failed' : 'succeeded';
  if (ctx.resuming && status === 'succeeded') {
    const all = await runTargetCounts(ctx.deps.db, run.id);
    if (all.failed + all.not_run + all.pending > 0) status = 'failed';
  }
  const warnings: string[] = [];
  if (writer.error) {
    warnings.push(
      `could not record every target in the catalog: ${errorMessage(writer.error)}; run migrate up again to bring the catalog up to date`,
    );
  }
  await finishRun(ctx.deps.db, run.id, status, { ...counts }).catch((err) =>
    warnings.push(`could not finish run ${run.id} in the catalog: ${errorMessage(err)}`),
  );

  const rows: MigrateRow[] = ctx.rows.sort((a, b) => (a.tenant < b.tenant ? -1 : a.tenant > b.tenant ? 1 : 0));
  const doc = resultDocument(ctx.command, rows, ctx.started, {
    run: run.id,
    dryRun: false,
    head: ctx.head,
    targets: counts,
    interrupted,
    ...(ctx.stopped ? { stopped: ctx.stopped } : {}),
    ...(ctx.resuming ? { resumed: opts.resume } : {}),
    ...(opts.onlyFailed !== undefined ? { retryOf: opts.onlyFailed } : {}),
    ...(warnings.length ? { warnings } : {}),
  }) as MigrateUpDocument;
  // Interrupted or not fully recorded: the run did not do all it was asked to.
  if (warnings.length || interrupted) doc.ok = false;
  return doc;
}

/**
 * A target whose run threw (not a migration's failure, which migrateTarget returns): the lock
 * session lost (SHARD_LOST, naming the catalog and the locks) or a shard's connection gone
 * (UNREACHABLE) keep their codes, so the row says what happened and the run is not stopped by
 * a shard's outage; anything else is the target's failure.
 */
function thrownTargetError(err: unknown): TargetError {
  if (err instanceof TenantctlError && err.code === 'SHARD_LOST') return { code: 'SHARD_LOST', message: err.message, hint: err.hint };
  if (isConnectionError(err))
    return { code: 'UNREACHABLE', message: redactText(errorMessage(err)), hint: 'check the shard, then run migrate up again' };
  return { code: 'MIGRATION_FAILED', message: redactText(errorMessage(err)) };
}
