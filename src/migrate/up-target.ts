import type { TenantRow } from '../catalog/tables.js';
import { durationMs } from '../config/load.js';
import { LockedError } from '../errors.js';
import type { TenantLockBatch } from '../operations/tenant-lock-batch.js';
import { locksLostError } from '../operations/lock-session.js';
import { migrationHooks } from '../placement/drivers.js';
import { fitsOneMessage } from './apply-one-round-trip.js';
import { migrateTarget } from './apply-target.js';
import type { PlannedTarget } from './plan.js';
import { isUnreachable, type TargetState } from './state.js';
import type { KnownState, MigrateTargetOptions } from './target-types.js';
import type { RunState } from './up-context.js';
import {
  done,
  failed,
  goneReason,
  goneRow,
  type MigrateRow,
  record,
  targetResult,
  tenantBase,
  tenantRow,
  type TargetDone,
} from './up-rows.js';

/**
 * One target of a `migrate up` run, and what follows when it ends (counts, rows, the catalog
 * record). A target with its own tenant is migrated under that tenant's lock, held only while it
 * migrates (never thousands at once: PostgreSQL's lock table is small), and only if the tenant is
 * still there: a tenant deleted during the run is reported gone, never recreated. A shared (pool)
 * target is migrated whoever comes and goes; its tenants deleted meanwhile are reported gone.
 */
export interface TargetRunner {
  runOne(t: PlannedTarget): Promise<TargetDone>;
  /** Count, row and record a target's result; exactly once per target. */
  finished(t: PlannedTarget, r: TargetDone): void;
}

export function targetRunner(ctx: RunState, states: Map<string, TargetState>, locks: TenantLockBatch): TargetRunner {
  const { deps, opts, health } = ctx;
  const targetOpts: MigrateTargetOptions = {
    config: deps.config,
    signal: opts.signal,
    onEvent: opts.hooks?.onEvent,
    ...opts.targetOptions,
  };
  // Under the tenant's lock (catalog), the target's own lock in its database is not taken
  // (tenants connect there and could hold it against a neighbour). One object for the run: the
  // batch shares what it builds between members with the same options (apply-batch.ts).
  const lockedOpts: MigrateTargetOptions = { ...targetOpts, tenantLocked: true };
  /** Shared targets: their tenants found gone after the target ran, by target id. */
  const poolGone = new Map<string, Map<string, string>>();

  async function runOne(t: PlannedTarget): Promise<TargetDone> {
    const t0 = Date.now();
    const known = states.get(t.id);
    states.delete(t.id); // read once; a run over 10,000 targets should not hold them all
    const down = known && !known.ok ? known.error : health.get(t.shard, t.database);
    if (down) return failed(t, down, t0);
    const shared = migrationHooks(t.model).shared;
    const held = shared ? { release: undefined } : await takeTenant(locks, t, t0);
    if ('status' in held) return held;
    try {
      const r = await migrateAt(t, known, shared, t0);
      return shared ? r : lockKept(locks, t, r, deps.db);
    } finally {
      // Sent with the next batch of lock statements; the run waits for it before it ends.
      void held.release?.();
    }
  }

  async function migrateAt(t: PlannedTarget, known: TargetState | undefined, shared: boolean, t0: number): Promise<TargetDone> {
    try {
      const base = shared ? targetOpts : lockedOpts;
      const read = knownState(known);
      const { batcher } = ctx;
      // Several targets of a database in one message; null: this one takes its own path.
      if (batcher && read && !shared && fitsOneMessage(migrationHooks(t.model), read)) {
        const o = await batcher.submit(t.shard, { target: t, known: read, opts: base });
        if (o) return done(t, o);
      }
      // With the state read before the fan-out, a target usually goes in one round trip.
      const own = read ? { ...base, known: read } : base;
      // migrateTarget works on its one connection (Fleet.withLeafClient: no holder entered).
      const alone = () =>
        deps.fleet.withLeafClient(t.shard, t.database, async (c) => done(t, await migrateTarget(c, t, deps.migrations, own)));
      const r = batcher ? await batcher.withSlot(t.shard, alone) : await alone();
      if (shared) {
        const gone = await poolTenantsGone(deps.db, t);
        if (gone.size > 0) poolGone.set(t.id, gone);
      }
      return r;
    } catch (err) {
      if (!isUnreachable(err)) throw err;
      return failed(t, health.failure(t.shard, err), t0);
    }
  }

  function finished(t: PlannedTarget, r: TargetDone): void {
    const gone = poolGone.get(t.id);
    poolGone.delete(t.id);
    countAndRecord(ctx, t, r, gone);
    opts.hooks?.onTargetResult?.(t, r);
  }

  return { runOne, finished };
}

/**
 * A target migrated under its tenant's lock, found after it ended that the lock session was lost
 * meanwhile (the catalog's connection gone): another command may have moved or changed the
 * tenant while this one migrated it, so it is not reported migrated. Running migrate up again
 * migrates the tenant where the catalog says it lives (up to date where nothing happened).
 */
function lockKept(locks: TenantLockBatch, t: PlannedTarget, r: TargetDone, db: object): TargetDone {
  if (!locks.lost() || r.status === 'failed') return r;
  const lost = locksLostError(db);
  const error = { code: 'SHARD_LOST' as const, message: `${lost.message} (it was migrating ${t.id})`, hint: lost.hint };
  // What it applied stays said (it did, there); the row and the run are failed.
  return { ...r, status: 'failed', error, outcome: r.outcome && { ...r.outcome, status: 'failed', error } };
}

/**
 * An exclusive target's tenant lock, and its catalog row read under it: the release, or the
 * target's result when the tenant is gone or its lock stays busy.
 */
async function takeTenant(locks: TenantLockBatch, t: PlannedTarget, t0: number): Promise<{ release: () => Promise<void> } | TargetDone> {
  try {
    const { lock, now } = await locks.take(t.tenants[0].slug);
    const release = () => lock.release();
    const why = goneReason(t, now);
    if (!why) return { release };
    void release();
    // Moved since the plan (a move took it before this run did): it lives on, not migrated.
    if (now && why.startsWith('gone: the tenant moved'))
      return failed(
        t,
        {
          code: 'TENANT_MOVED',
          message: `${t.tenants[0].slug} moved to ${now.shard}/${now.database_name}/${now.schema_name} during the run, before its migration here: it was not migrated`,
          hint: 'run migrate up again (or with --only-failed <run>): it migrates the tenant where it lives now',
        },
        t0,
      );
    return { ...targetResult(t), status: 'skipped', reason: why, durationMs: Date.now() - t0 };
  } catch (err) {
    if (!(err instanceof LockedError)) throw err;
    return failed(t, { code: 'LOCKED', message: err.message, hint: 'run migrate up again when that command has finished' }, t0);
  }
}

/** What the read before the fan-out says is pending at the target; none when it failed or drifted. */
function knownState(known: TargetState | undefined): KnownState | undefined {
  if (!known?.ok || known.report.drift.length > 0) return undefined;
  return {
    applied: known.applied,
    pending: known.report.pending,
    unknown: known.report.unknown,
    tracked: known.tracked,
    timed: known.timed,
  };
}

/** A shared target's tenants deleted (or moved away) while it ran, with why; read after it ran. */
async function poolTenantsGone(db: RunState['deps']['db'], t: PlannedTarget): Promise<Map<string, string>> {
  const slugs = t.tenants.map((x) => x.slug);
  const now = new Map<string, TenantRow>();
  for (let i = 0; i < slugs.length; i += 5000) {
    const part = await db
      .selectFrom('tenants')
      .selectAll()
      .where('slug', 'in', slugs.slice(i, i + 5000))
      .execute();
    for (const row of part) now.set(row.slug, row);
  }
  const gone = new Map<string, string>();
  for (const slug of slugs) {
    const why = goneReason(t, now.get(slug));
    if (why) gone.set(slug, why);
  }
  return gone;
}

/** Count a finished target, add its tenants' rows and queue its catalog record; exactly once per target. */
function countAndRecord(ctx: RunState, t: PlannedTarget, r: TargetDone, gone: Map<string, string> | undefined): void {
  const { counts, rows, writer } = ctx;
  const o = r.outcome;
  if (r.status === 'failed') {
    counts.failed++;
    if (r.error?.code === 'UNREACHABLE') counts.unreachable++;
  } else if (r.status === 'skipped' && r.reason?.startsWith('gone')) counts.gone++;
  else if (r.status === 'skipped') counts.notRun++;
  else if (o && o.applied.length === 0) counts.upToDate++;
  else counts.migrated++;
  if (o) {
    // A loop, not a spread of a mapped array: a row per tenant of 5,000 targets.
    for (const x of t.tenants) {
      const row = tenantRow(t, x.slug, o);
      const why = gone?.get(x.slug);
      rows.push(why ? goneRow(row, why) : timed(row, r));
    }
    writer.push(record(t, { status: o.status === 'skipped' ? 'not_run' : o.status, outcome: o }));
    // The rows and the record have what the outcome said; the fan-out's result need not keep it.
    r.outcome = undefined;
    return;
  }
  rows.push(...t.tenants.map((x) => timed({ ...tenantBase(t, x.slug), status: r.status, reason: r.reason, error: r.error }, r)));
  const status = r.status === 'failed' ? 'failed' : 'not_run';
  const code = r.reason?.startsWith('gone') ? 'GONE' : 'NOT_RUN';
  writer.push({ target: t.id, status, error: r.error ?? { code, message: r.reason ?? 'not run' } });
}

/** How long a target waits for its tenant's lock: the per-target override, else migrations.lockTimeout. */
export function tenantLockWaitMs(ctx: Pick<RunState, 'deps' | 'opts'>): number {
  return ctx.opts.targetOptions?.lockWaitMs ?? durationMs(ctx.deps.config.migrations.lockTimeout);
}

/** A target's rows say when the fan-out ran it (absent for targets it never started). */
function timed<Row extends MigrateRow>(row: Row, r: TargetDone): Row {
  if (r.startedAt) {
    row.startedAt = r.startedAt;
    row.finishedAt = r.finishedAt;
  }
  return row;
}
