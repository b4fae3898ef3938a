import type { CatalogDb } from '../catalog/open.js';
import { selectTenants, type TenantSelector } from '../catalog/tenants.js';
import type { Config } from '../config/types.js';
import { resultDocument, type ResultDocument, type TenantResult } from '../fanout/result.js';
import { fanout, type FanoutOptions, type OnError } from '../fanout/run.js';
import type { Fleet } from '../fleet/fleet.js';
import {
  driftError,
  MIGRATION_LOCK_CLASSID,
  migrateTarget,
  type MigrateEvent,
  type MigrateTargetOptions,
  type TargetError,
  type TargetOutcome,
} from './apply-target.js';
import { ensureTrackingTable } from './tracking.js';
import type { MigrationFile } from './files.js';
import { planTargets, splitCanaries, type MigratePlan, type Partition, type PlannedTarget, type SkippedTenant } from './plan.js';
import {
  acquireRunLock,
  CatalogWriter,
  createRun,
  finishRun,
  getRun,
  insertTargets,
  reopenRun,
  runTargetCounts,
  runTargets,
  type RunInfo,
  type RunLock,
  type RunStatus,
  type TargetRecord,
} from './run-record.js';
import { lockTenant, type TenantLock } from '../operations/tenant-lock.js';
import { findTenant } from '../catalog/tenants.js';
import { LockedError } from '../errors.js';
import { durationMs } from '../config/load.js';
import { byDatabase, isUnreachable, nothingToDo, readStates, ShardHealth, versionOf, type TargetState } from './state.js';

/**
 * `migrate up` without the CLI: plan the targets, take the fleet run lock, record the run, and
 * migrate every target through the bounded fan-out, one result row per tenant.
 *
 * Pending work is found with one query per database; targets with nothing pending and no drift
 * finish without a connection of their own and without their lock (pool targets still get the
 * cheap row-level-security check). Each target's state goes to the catalog right after its step
 * finished, with its tenants' schema_version, in one transaction.
 */
export interface MigrateUpDeps {
  config: Config;
  db: CatalogDb;
  fleet: Fleet;
  migrations: MigrationFile[];
  command?: string;
}

export interface MigrateUpOptions {
  selector?: TenantSelector;
  partition?: Partition;
  /** Targets migrated at once across the fleet (each shard is also held to its budget). */
  concurrency: number;
  onError?: OnError;
  maxFailures?: number;
  /** Run this many targets first, one at a time; stop if any fails. */
  canary?: number;
  /** Print what would be applied; change nothing (no tracking table, no lock, no run record). */
  dryRun?: boolean;
  /** Finish this run: its targets not yet succeeded. */
  resume?: number;
  /** Retry this run's failed targets (a new run). */
  onlyFailed?: number;
  /** Wait for another run's lock instead of exit 3. */
  wait?: boolean;
  /** Aborting stops scheduling; running targets finish their current migration. */
  signal?: AbortSignal;
  /** Per-target overrides (tests shorten waits). */
  targetOptions?: Pick<MigrateTargetOptions, 'lockWaitMs' | 'retryBaseMs' | 'targetTimeoutMs'>;
  hooks?: MigrateUpHooks;
}

export interface MigrateUpHooks {
  /** --wait: another run holds the lock. */
  onWaiting?(holder: string): void;
  /** The run is recorded: its id and how many targets have work. */
  onRun?(info: { runId: number; resumed: boolean; targets: number; work: number; upToDate: number; skipped: number }): void;
  onTargetStart?(t: PlannedTarget): void;
  /** A target with work finished (or was not run): one result per target, for progress lines. */
  onTargetResult?(t: PlannedTarget, r: TenantResult): void;
  onEvent?(e: MigrateEvent): void;
}

/** One row per tenant, as in DESIGN.md. */
export interface MigrateRow extends TenantResult {
  applied?: string[];
  /** Dry run: what would be applied. After a failure: what is still pending. */
  pending?: string[];
  unknown?: string[];
  warnings?: string[];
}

export interface MigrateUpDocument extends ResultDocument<MigrateRow> {
  /** The run record's id (null for a dry run). */
  run: number | null;
  dryRun: boolean;
  /** The last migration file. */
  head: string | null;
  /**
   * Targets by outcome. `failed` includes `unreachable` (targets on shards that did not answer);
   * `gone` are tenants deleted (or no longer migratable) by the time their target was taken.
   */
  targets: { total: number; upToDate: number; migrated: number; failed: number; notRun: number; unreachable: number; gone: number };
  /** The failure policy stopped scheduling: why, its limit, and the failures in the end (running targets may add to them). */
  stopped?: { reason: string; limit: number; failuresAtStop: number; failures: number };
  interrupted: boolean;
  resumed?: number;
  retryOf?: number;
  warnings?: string[];
}

/** Target-level result inside the fan-out. */
interface TargetDone extends TenantResult {
  outcome?: TargetOutcome;
}

/**
 * @example
 *   const { doc } = await migrateUp(deps, { concurrency: 8, selector: { region: ['us-east'] } });
 *   process.exitCode = doc.ok ? 0 : 1;
 */
export async function migrateUp(deps: MigrateUpDeps, opts: MigrateUpOptions): Promise<{ doc: MigrateUpDocument }> {
  const started = Date.now();
  const { db } = deps;
  const head = deps.migrations.at(-1)?.id ?? null;

  const { plan, previous, partition, gone } = await loadPlan(db, opts);

  if (opts.dryRun) return { doc: await dryRun(deps, opts, plan, started, head) };

  const lock = await acquireRunLock(db, { partition, wait: opts.wait, signal: opts.signal, onWaiting: opts.hooks?.onWaiting });
  try {
    return { doc: await execute(deps, opts, plan, lock, previous, gone, started, head) };
  } finally {
    await lock.release();
  }
}

/**
 * Which targets: the selectors, or the remaining/failed targets of an earlier run. The catalog
 * rows are dropped once planned (a fleet of 10,000 tenants would otherwise keep them all, with
 * every column, for the whole run).
 */
async function loadPlan(db: CatalogDb, opts: MigrateUpOptions) {
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
  const plan = planTargets(await selectTenants(db, fromRun !== undefined ? {} : (opts.selector ?? {})), {
    partition: fromRun !== undefined ? undefined : partition,
    only,
  });
  // Targets of the earlier run that are no longer migratable (deleted, or now failed/deleting).
  const planned = new Set(plan.targets.map((t) => t.id));
  const gone = only ? [...only].filter((id) => !planned.has(id)).map((id) => ({ id, tenants: recorded.get(id) ?? [] })) : [];
  return { plan, previous, partition, gone };
}

async function execute(
  deps: MigrateUpDeps,
  opts: MigrateUpOptions,
  plan: MigratePlan,
  lock: RunLock,
  previous: RunInfo | undefined,
  gone: { id: string; tenants: string[] }[],
  started: number,
  head: string | null,
): Promise<MigrateUpDocument> {
  const { db, fleet, config, migrations } = deps;
  const command = deps.command ?? 'migrate up';
  const resuming = opts.resume !== undefined;
  const counts = { total: plan.targets.length, upToDate: 0, migrated: 0, failed: 0, notRun: 0, unreachable: 0, gone: 0 };
  let stopped: MigrateUpDocument['stopped'];
  const run = resuming
    ? await reopenRun(lock, opts.resume!)
    : await createRun(
        lock,
        {
          command,
          head,
          migrations: migrations.length,
          selector: opts.selector ?? {},
          partition: opts.partition ?? null,
          concurrency: opts.concurrency,
          onError: opts.onError ?? 'stop',
          maxFailures: opts.maxFailures ?? null,
          canary: opts.canary ?? 0,
          retryOf: opts.onlyFailed ?? null,
        },
        { ...counts },
      );
  const writer = new CatalogWriter(db, run.id, command, () => ({ ...counts }));

  // Pending work, one query per database that serves several targets; a database with one
  // target (a pool, a database tenant) is read on the connection that would migrate it.
  const health = new ShardHealth(fleet);
  const shared = byDatabase(plan.targets).filter((g) => g.length > 1);
  const states = await readStates(fleet, shared, migrations, { concurrency: opts.concurrency, health });

  // A database of schema targets that was never migrated gets its tracking table once here
  // (the first target would create it anyway), so that every target can go in one round trip.
  for (const group of shared) {
    const untracked = group.filter((t) => {
      const s = states.get(t.id);
      return s?.ok && !s.tracked && s.report.pending.length > 0;
    });
    if (untracked.length === 0) continue;
    try {
      await fleet.withClient(group[0].shard, group[0].database, (c) => ensureTrackingTable(c, MIGRATION_LOCK_CLASSID));
      for (const t of untracked) {
        const s = states.get(t.id);
        if (s?.ok) states.set(t.id, { ...s, tracked: true });
      }
    } catch {
      // Left to each target's own path, which reports what is wrong.
    }
  }

  const rows: MigrateRow[] = [];
  const work: PlannedTarget[] = [];
  for (const t of plan.targets) {
    const s = states.get(t.id);
    if (s && s.ok && nothingToDo(s) && t.model !== 'pool') {
      counts.upToDate++;
      const outcome = upToDateOutcome(t, s);
      rows.push(...tenantRows(t, outcome));
      // No row of its own in a fresh run; the tenants' schema_version still follows the target
      // where the catalog has it wrong.
      if (resuming || t.tenants.some((x) => x.schemaVersion !== outcome.version)) {
        writer.push(record(t, { status: resuming ? 'succeeded' : undefined, outcome }));
      }
    } else {
      work.push(t);
    }
  }
  if (!resuming) {
    await insertTargets(
      db,
      run.id,
      work.map((t, i) => ({
        target: t.id,
        position: i,
        model: t.model,
        shard: t.shard,
        database_name: t.database,
        schema_name: t.schema,
        tenants: t.tenants.map((x) => x.slug),
      })),
    );
  }
  opts.hooks?.onRun?.({ runId: run.id, resumed: resuming, targets: plan.targets.length, work: work.length, upToDate: counts.upToDate, skipped: plan.skipped.length });

  const targetOpts: MigrateTargetOptions = { config, signal: opts.signal, onEvent: opts.hooks?.onEvent, ...opts.targetOptions };

  async function runOne(t: PlannedTarget): Promise<TargetDone> {
    const t0 = Date.now();
    const known = states.get(t.id);
    states.delete(t.id); // read once; a run over 10,000 targets should not hold them all
    const down = known && !known.ok ? known.error : health.get(t.shard, t.database);
    if (down) return failed(t, down, t0);
    // A schema or database tenant's own target is migrated under its tenant lock, held only while
    // it migrates (never thousands at once: PostgreSQL's lock table is small), and only if the
    // tenant is still there: a tenant deleted during the run is reported gone, never recreated.
    let lock: TenantLock | undefined;
    if (t.model !== 'pool') {
      const slug = t.tenants[0].slug;
      try {
        lock = await lockTenant(db, slug, { command, wait: true, waitMs: targetOpts.lockWaitMs ?? lockWaitMs, signal: opts.signal });
      } catch (err) {
        if (!(err instanceof LockedError)) throw err;
        return failed(t, { code: 'LOCKED', message: err.message, hint: 'run migrate up again when that command has finished' }, t0);
      }
      const now = await findTenant(db, slug);
      const why = goneReason(t, now);
      if (why) {
        await lock.release();
        return { ...targetResult(t), status: 'skipped', reason: why, durationMs: Date.now() - t0 };
      }
    }
    try {
      // migrateTarget reads again under the target's lock; a target with nothing to do costs it
      // three round trips on a connection the pool already has open.
      // With the state read before the fan-out, a target usually goes in one round trip.
      const opts = known?.ok && known.report.drift.length === 0
        ? { ...targetOpts, known: { applied: known.applied, pending: known.report.pending, unknown: known.report.unknown, tracked: known.tracked } }
        : targetOpts;
      return await fleet.withClient(t.shard, t.database, async (c) => done(t, await migrateTarget(c, t, migrations, opts)));
    } catch (err) {
      if (!isUnreachable(err)) throw err;
      return failed(t, health.failure(t.shard, err), t0);
    } finally {
      await lock?.release();
    }
  }
  const lockWaitMs = durationMs(config.migrations.lockTimeout);

  const notRun = (t: PlannedTarget, reason: string): TargetDone => ({
    ...targetResult(t),
    status: 'skipped',
    reason: reason.startsWith('not run') ? reason : `not run: ${reason}`,
  });
  const finished = (t: PlannedTarget, r: TargetDone) => {
    const o = r.outcome;
    if (r.status === 'failed') {
      counts.failed++;
      if (r.error?.code === 'UNREACHABLE') counts.unreachable++;
    } else if (r.status === 'skipped' && r.reason?.startsWith('gone')) counts.gone++;
    else if (r.status === 'skipped') counts.notRun++;
    else if (o && o.applied.length === 0) counts.upToDate++;
    else counts.migrated++;
    if (o) {
      rows.push(...tenantRows(t, o));
      writer.push(record(t, { status: o.status === 'skipped' ? 'not_run' : o.status, outcome: o }));
      // The rows and the record have what the outcome said; the fan-out's result need not keep it.
      r.outcome = undefined;
    } else {
      rows.push(...t.tenants.map((x) => ({ ...tenantBase(t, x.slug), status: r.status, reason: r.reason, error: r.error })));
      const status = r.status === 'failed' ? 'failed' : 'not_run';
      const code = r.reason?.startsWith('gone') ? 'GONE' : 'NOT_RUN';
      writer.push({ target: t.id, status, error: r.error ?? { code, message: r.reason ?? 'not run' } });
    }
    opts.hooks?.onTargetResult?.(t, r);
  };
  const onThrow = (t: PlannedTarget, err: unknown): TargetDone => failed(t, { code: 'MIGRATION_FAILED', message: err instanceof Error ? err.message : String(err) }, Date.now());

  /** One fan-out; every target gets finished() exactly once, as it ends or, if never started, after. */
  async function pass(items: PlannedTarget[], fo: Omit<FanoutOptions<PlannedTarget>, 'onResult' | 'onStart' | 'signal'>): Promise<number> {
    const seen = new Set<PlannedTarget>();
    let failures = 0;
    const results = await fanout(
      items,
      {
        ...fo,
        signal: opts.signal,
        onStart: opts.hooks?.onTargetStart,
        // Recorded as each target ends, so the catalog follows the run.
        onResult: (t, r) => {
          seen.add(t);
          if (r.status === 'failed') failures++;
          finished(t, r);
        },
      },
      runOne,
      notRun,
      onThrow,
    );
    // Targets never started (stopped by the failure policy or Ctrl-C) come back only here.
    items.forEach((t, i) => {
      if (!seen.has(t)) finished(t, results[i]);
    });
    return failures;
  }

  const { canaries, rest } = splitCanaries(work, opts.canary ?? 0);
  const canaryFailures = await pass(canaries, { concurrency: 1, shardOf: (t) => t.shard, shardBudget: () => 1, onError: 'stop' });
  if (canaryFailures > 0) {
    for (const t of rest) finished(t, notRun(t, 'not run: a canary target failed (--canary)'));
  } else {
    await pass(rest, {
      concurrency: opts.concurrency,
      shardOf: (t) => t.shard,
      shardBudget: (s) => fleet.connections(s).budget,
      onError: opts.onError ?? 'stop',
      maxFailures: opts.maxFailures,
      // The stop policy is about migrations that fail: a shard that does not answer fails its own
      // targets and the run goes on with the other shards.
      countsAsFailure: (r) => r.status === 'failed' && r.error?.code !== 'UNREACHABLE',
      onStop: (reason, failures) => {
        stopped = { reason: reason.replace(/^not run: /, ''), limit: opts.maxFailures ?? 1, failuresAtStop: failures, failures };
      },
    });
    if (stopped) stopped.failures = counts.failed - counts.unreachable;
  }

  for (const s of plan.skipped) rows.push(skippedRow(s));
  const skippedSlugs = new Set(plan.skipped.map((s) => s.tenant.slug));
  for (const g of gone) {
    const reason = 'no longer migratable: deleted, or provisioning, failed or being deleted';
    for (const slug of g.tenants) if (!skippedSlugs.has(slug)) rows.push({ tenant: slug, target: g.id, status: 'skipped', reason });
    writer.push({ target: g.id, status: 'not_run', error: { code: 'GONE', message: reason } });
  }

  await writer.close();
  const interrupted = Boolean(opts.signal?.aborted);
  let status: RunStatus = interrupted ? 'interrupted' : counts.failed + counts.notRun > 0 ? 'failed' : 'succeeded';
  if (resuming && status === 'succeeded') {
    const all = await runTargetCounts(db, run.id);
    if (all.failed + all.not_run + all.pending > 0) status = 'failed';
  }
  const warnings: string[] = [];
  if (writer.error) {
    warnings.push(`could not record every target in the catalog: ${errorText(writer.error)}; run migrate up again to bring the catalog up to date`);
  }
  await finishRun(db, run.id, status, { ...counts }).catch((err) => warnings.push(`could not finish run ${run.id} in the catalog: ${errorText(err)}`));

  rows.sort((a, b) => (a.tenant < b.tenant ? -1 : a.tenant > b.tenant ? 1 : 0));
  const doc = resultDocument(command, rows, started, {
    run: run.id,
    dryRun: false,
    head,
    targets: counts,
    interrupted,
    ...(stopped ? { stopped } : {}),
    ...(resuming ? { resumed: opts.resume } : {}),
    ...(opts.onlyFailed !== undefined ? { retryOf: opts.onlyFailed } : {}),
    ...(warnings.length ? { warnings } : {}),
  }) as MigrateUpDocument;
  // Interrupted or not fully recorded: the run did not do all it was asked to.
  if (warnings.length || interrupted) doc.ok = false;
  return doc;
}

async function dryRun(deps: MigrateUpDeps, opts: MigrateUpOptions, plan: MigratePlan, started: number, head: string | null): Promise<MigrateUpDocument> {
  const states = await readStates(deps.fleet, byDatabase(plan.targets), deps.migrations, { concurrency: opts.concurrency });
  const rows: MigrateRow[] = [];
  const counts = { total: plan.targets.length, upToDate: 0, migrated: 0, failed: 0, notRun: 0, unreachable: 0, gone: 0 };
  for (const t of plan.targets) {
    const s = states.get(t.id)!;
    let outcome: TargetOutcome;
    if (!s.ok) outcome = { target: t.id, status: 'failed', applied: [], pending: [], unknown: [], durationMs: 0, error: s.error };
    else if (s.report.drift.length > 0) outcome = { target: t.id, status: 'failed', applied: [], pending: [], unknown: s.report.unknown, durationMs: 0, error: driftError(s.report.drift) };
    else outcome = { target: t.id, status: 'succeeded', applied: [], pending: s.report.pending.map((m) => m.id), unknown: s.report.unknown, durationMs: 0 };
    if (outcome.status === 'failed') counts.failed++;
    else if (outcome.pending.length === 0) counts.upToDate++;
    else counts.migrated++;
    rows.push(...tenantRows(t, outcome));
  }
  for (const s of plan.skipped) rows.push(skippedRow(s));
  rows.sort((a, b) => (a.tenant < b.tenant ? -1 : a.tenant > b.tenant ? 1 : 0));
  return resultDocument(deps.command ?? 'migrate up', rows, started, { run: null, dryRun: true, head, targets: counts, interrupted: false }) as MigrateUpDocument;
}

/** Why a schema/database target's tenant is no longer to be migrated (read under its lock), or null. */
function goneReason(t: PlannedTarget, now: { status: string; shard: string; database_name: string; schema_name: string } | undefined): string | null {
  if (!now) return 'gone: the tenant was deleted during the run';
  if (now.shard !== t.shard || now.database_name !== t.database || now.schema_name !== t.schema) return 'gone: the tenant moved during the run';
  if (now.status !== 'active' && now.status !== 'suspended') return `gone: the tenant became ${now.status} during the run`;
  return null;
}

function tenantBase(t: PlannedTarget, slug: string) {
  return { tenant: slug, model: t.model, region: t.region, shard: t.shard, target: t.id };
}

/** A target-level result, labelled for progress lines (a pool target names its tenant count). */
function targetResult(t: PlannedTarget): { tenant: string; model: string; region: string; shard: string; target: string } {
  const label = t.model === 'pool' ? `pool of ${t.shard} (${t.tenants.length} tenant${t.tenants.length === 1 ? '' : 's'})` : t.tenants[0].slug;
  return { tenant: label, model: t.model, region: t.region, shard: t.shard, target: t.id };
}

function done(t: PlannedTarget, outcome: TargetOutcome): TargetDone {
  if (outcome.error?.code === 'INTERRUPTED') {
    // Ctrl-C between two migrations: what ran is committed, the rest is for --resume. Not a failure.
    const applied = outcome.applied.length ? ` after applying ${outcome.applied.join(', ')}` : '';
    outcome = { ...outcome, status: 'skipped', reason: `not run: interrupted${applied}`, error: undefined };
  }
  return {
    ...targetResult(t),
    status: outcome.status,
    durationMs: outcome.durationMs,
    reason: outcome.reason,
    error: outcome.error ? publicError(outcome.error) : undefined,
    outcome,
  };
}

function failed(t: PlannedTarget, error: TargetError, t0: number): TargetDone {
  const outcome: TargetOutcome = { target: t.id, status: 'failed', applied: [], pending: [], unknown: [], durationMs: Date.now() - t0, error };
  return done(t, outcome);
}

function upToDateOutcome(t: PlannedTarget, s: TargetState & { ok: true }): TargetOutcome {
  return { target: t.id, status: 'succeeded', applied: [], pending: [], unknown: s.report.unknown, durationMs: 0, version: versionOf(s.applied) };
}

/** The tenant rows of one target's outcome: pool tenants share it, each with its own row. */
function tenantRows(t: PlannedTarget, o: TargetOutcome): MigrateRow[] {
  return t.tenants.map((x) => {
    const row: MigrateRow = { ...tenantBase(t, x.slug), status: o.status, applied: o.applied, durationMs: o.durationMs };
    if (o.pending.length > 0) row.pending = o.pending;
    if (o.unknown.length > 0) row.unknown = o.unknown;
    if (o.warnings?.length) row.warnings = o.warnings;
    if (o.reason) row.reason = o.reason;
    if (o.error) row.error = publicError(o.error);
    return row;
  });
}

function skippedRow(s: SkippedTenant): MigrateRow {
  return { tenant: s.tenant.slug, model: s.tenant.model, region: s.tenant.region, shard: s.tenant.shard, target: s.target, status: 'skipped', reason: s.reason };
}

/** `{ code, message, migration }` first, then PostgreSQL's code and the hint. */
function publicError(e: TargetError): MigrateRow['error'] & object {
  const out: Record<string, unknown> = { code: e.code, message: e.message };
  if (e.migration) out.migration = e.migration;
  if (e.pgCode) out.pgCode = e.pgCode;
  if (e.hint) out.hint = e.hint;
  if (e.drift) out.drift = e.drift;
  return out as { code: string; message: string };
}

/** The catalog record of a finished target. */
function record(t: PlannedTarget, r: { status?: TargetRecord['status']; outcome: TargetOutcome }): TargetRecord {
  const o = r.outcome;
  const slugs = t.model === 'pool' ? [] : t.tenants.map((x) => x.slug);
  const version = o.version ?? null;
  const rec: TargetRecord = {
    target: t.id,
    status: r.status,
    applied: o.applied,
    error: o.error ? publicError(o.error) : r.status === 'not_run' ? { code: 'NOT_RUN', message: o.reason ?? 'not run' } : undefined,
    startedAt: new Date(Date.now() - o.durationMs),
    durationMs: o.durationMs,
    version,
    slugs,
    poolShard: t.model === 'pool' ? t.shard : undefined,
  };
  if (o.applied.length > 0 || o.status === 'failed') {
    rec.event = {
      action: o.status === 'failed' ? 'migrate failed' : 'migrated',
      result: o.status === 'failed' ? 'failed' : 'ok',
      details: { target: t.id, applied: o.applied, ...(o.error ? { error: publicError(o.error) } : {}) },
      tenants: t.tenants.map((x) => x.slug),
    };
  }
  return rec;
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
