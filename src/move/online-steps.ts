import { updateTenant } from '../catalog/tenants.js';
import { recordEvent } from '../catalog/events.js';
import type { Config } from '../config/types.js';
import type { Fleet } from '../fleet/fleet.js';
import { TenantctlError, errorMessage } from '../errors.js';
import { sqlDigest, type DigestRows } from '../copy/sql-digest.js';
import type pg from 'pg';

type Q = Pick<pg.ClientBase, 'query'>;
import type { CopyScope, CopyTable } from '../copy/tables.js';
import pLimit from 'p-limit';
import type { MovePlan } from './plan.js';
import { ident, qualified } from '../sql.js';
import { MoveVerifyError, type TableCheck } from './copy.js';
import { isInterrupt } from './interrupt.js';
import type { MoveRun } from './start.js';
import { fenceRecordFor, takeFence, type HeldFence } from './fence.js';
import { ONLINE_PHASES, PHASES, type MoveResult, type PhaseName } from './types.js';
import { faultPoint } from '../operations/fault-points.js';
import { isLockTimeout } from '../copy/load-lock-wait.js';
import { tableLockHolders } from '../migrate/table-lock-holders.js';
import { keepSuspended } from './keep-suspended.js';
import { liftSwitchFence, placeSwitchFence } from './switch-fence.js';
import { unfenceSwitchedKey } from '../placement/pool/switch-fence.js';
import { namesAfter } from './names.js';
import { recordSwitch } from './switch-catalog.js';
import { withPoolVersionsHeld } from './versions-at-switch.js';
import type { ForeignKeyPath } from '../copy/pool-load-path.js';
import { drivers } from '../placement/drivers.js';
import { recordedFailure } from '../operations/tenant-operation.js';
import { endsCommand } from '../operations/failure.js';

/** Tables digested at once while writes are blocked (two connections each, one per side). */
const VERIFY_CONCURRENCY = 3;

/** What both online paths share once the move is recorded (start.ts: the offline run's too). */
export type OnlineRun = MoveRun;

/**
 * Both sides of each table measured by the same query inside PostgreSQL (sqlDigest: no row
 * crosses to Node), each on its own cluster at once; a few tables at once, since writes are blocked.
 * `source`: measure the source on this client (a snapshot the caller holds; one query at a time
 * on it); `only`: just the rows with these primary keys.
 */
export function bothSides(fleet: Fleet, config: Config, plan: MovePlan) {
  const srcScope: CopyScope = { model: plan.from.model, schema: plan.from.schema, key: plan.key };
  const dstScope: CopyScope = { model: plan.to.model, schema: plan.to.schema, key: plan.key };
  const limit = pLimit(VERIFY_CONCURRENCY);
  // The caller's one source client takes one query at a time (pg would queue the rest, deprecated): its tables in turn, the target's still at once.
  const onSource = pLimit(1);
  return (tb: CopyTable, o: { source?: Q; only?: DigestRows } = {}): Promise<TableCheck> =>
    limit(async () => {
      const [s, d] = await Promise.all([
        o.source
          ? onSource(() => sqlDigest(o.source!, tb, srcScope, config, o.only))
          : fleet.withClient(plan.from.shard, plan.from.database, (c) => sqlDigest(c, tb, srcScope, config, o.only)),
        fleet.withClient(plan.to.shard, plan.to.database, (c) => sqlDigest(c, tb, dstScope, config, o.only)),
      ]);
      return {
        table: tb.table,
        rows: s.rows,
        bytes: s.bytes,
        source: { rows: s.rows, hash: s.hash },
        target: { rows: d.rows, hash: d.hash },
      };
    });
}

export const differs = (c: TableCheck) => c.source.rows !== c.target.rows || c.source.hash !== c.target.hash;

/** Throws MOVE_VERIFY naming every table whose sides differ. */
export function assertSame(checks: TableCheck[]): void {
  const wrong = checks.filter(differs);
  if (wrong.length) {
    throw new MoveVerifyError(
      `verification failed: ${wrong.map((w) => `${w.table}: source ${w.source.rows} rows (hash ${w.source.hash}), target ${w.target.rows} rows (hash ${w.target.hash})`).join('; ')}; nothing was switched, the copy was removed`,
      checks,
    );
  }
}

/**
 * The source's switch fence placed, then the catalog points at the target, with the event `moved`,
 * in one transaction; a pool end's migrations held from the check that its version did not move
 * to the commit (versions-at-switch.ts).
 */
export async function switchCatalog(run: OnlineRun, checks: TableCheck[], foreignKeyCheck?: ForeignKeyPath): Promise<void> {
  await withPoolVersionsHeld(run, () => switchHeld(run, checks, foreignKeyCheck));
}

async function switchHeld(run: OnlineRun, checks: TableCheck[], foreignKeyCheck?: ForeignKeyPath): Promise<void> {
  const { plan, rec, prevStatus, prevDetail } = run;
  // A suspended tenant stays suspended at its new placement (keep-suspended.ts).
  await keepSuspended(run.deps.fleet, run.deps.config, plan, prevStatus);
  // The source refuses the application's writes from here until complete or rollback.
  await placeSwitchFence(run.deps, rec, plan, run.pre.tables);
  // A pool target lifts the fence an earlier life of the key left there (its rows go nowhere
  // else from now on); kept until here, a failed move never opened the pool to a stale URL.
  if (plan.to.model === 'pool') {
    await run.deps.fleet.withTransaction(plan.to.shard, plan.to.database, (c) => unfenceSwitchedKey(c, run.deps.config, plan.key));
  }
  await faultPoint('move.switch-fence', { signal: run.deps.signal });
  await recordSwitch(
    run.deps.db,
    run.deps.command,
    plan,
    rec,
    checks,
    { status: prevStatus, detail: prevDetail },
    rec.args.online ? { online: true, via: rec.args.onlineVia } : {},
    foreignKeyCheck,
  );
}

/**
 * The `fence` phase: the write fence recorded before it is taken (a kill right after leaves a
 * fence the next command knows of), taken, recorded as taken. `held.fence` is set as soon as it
 * is held, so the caller's failure path lifts it whatever fails next.
 */
export async function fenceStep(run: MoveRun, held: { fence?: HeldFence }): Promise<HeldFence> {
  const { rec, plan, clock } = run;
  clock.begin('fence');
  const frec = fenceRecordFor(plan.from, plan.key);
  await rec.update({ fence: frec });
  const fence = await takeFence(run.deps.fleet, frec);
  held.fence = fence;
  await rec.update({ fence: fence.record });
  await clock.done('fence', rec);
  return fence;
}

/** How long lifting the source's fence after the switch may wait for its tables' locks. */
export const UNFENCE_AFTER_SWITCH_WAIT_MS = 2_000;

/**
 * The fence lifted after the switch: how long writes were blocked, recorded. A trigger fence is
 * dropped with DROP TRIGGER, which waits for every transaction on the source's tables, readers
 * too (an application still on the old URL in a long read): it waits UNFENCE_AFTER_SWITCH_WAIT_MS,
 * then leaves the fence recorded, unlifted, with a warning. The move has switched (the tenant
 * writes at the target); the source refuses writes either way (its switch fence), and the sweep
 * of the tenant's next command, `move complete` or `move rollback` lifts it. It used to wait the
 * connection's lock_timeout and fail the switched move.
 */
export async function liftAfterSwitch(run: OnlineRun, fence: HeldFence): Promise<{ writeBlockedMs: number; warning?: string }> {
  let warning: string | undefined;
  try {
    await fence.lift({ lockWaitMs: UNFENCE_AFTER_SWITCH_WAIT_MS });
  } catch (err) {
    if (!isLockTimeout(err) || fence.record.kind !== 'trigger') throw err;
    const { shard, database, schema } = fence.record;
    const holders = await run.deps.fleet.withClient(shard, database, (c) => tableLockHolders(c, schema)).catch(() => '');
    warning = `the write fence at the old placement ${shard}/${database}/${schema} stays: a transaction there holds its tables${holders}; its writes are refused either way, and the tenant's next tenantctl command (or move complete) lifts it`;
  }
  const writeBlockedMs = Date.now() - Date.parse(fence.record.at!);
  // Left up, the fence stays recorded unlifted: the sweep finds it.
  await run.rec.update(warning ? { writeBlockedMs } : { fence: { ...fence.record, liftedAt: new Date().toISOString() }, writeBlockedMs });
  return { writeBlockedMs, ...(warning ? { warning } : {}) };
}

/** The result of a switched move. */
export function switchedResult(
  run: OnlineRun,
  checks: TableCheck[],
  writeBlockedMs: number,
  warning?: string,
  extra: Pick<MoveResult, 'targetBuild' | 'foreignKeyCheck' | 'verifiedUnderFence'> = {},
): MoveResult {
  const { plan, rec, pre } = run;
  return {
    tenant: plan.tenant,
    status: 'switched',
    ...onlineFields(run),
    move: rec.id,
    from: plan.from,
    to: plan.to,
    version: pre.version,
    phases: run.clock.phases,
    tables: checks,
    rows: checks.reduce((n, c) => n + c.rows, 0),
    bytes: checks.reduce((n, c) => n + c.bytes, 0),
    writeBlockedMs,
    ...extra,
    targetMigrated: pre.targetMigrated,
    sharedNotCopied: pre.sharedNotCopied,
    resumed: run.resumed,
    names: namesAfter(run.deps.config, plan.tenant, plan.to, plan.from, { movedTo: true }),
    ...(warning ? { warning } : {}),
    durationMs: Date.now() - run.started,
  };
}

/** An online move's result says so, and which way it went. */
function onlineFields(run: OnlineRun): Pick<MoveResult, 'online' | 'onlineVia'> {
  return run.rec.args.online ? { online: true, onlineVia: run.rec.args.onlineVia } : {};
}

/**
 * The end of a move that did not switch (the caller has already undone what its path
 * made): the tenant's status back and the record closed in one transaction, then either the
 * error rethrown (usage and lock errors) or the failed result.
 */
export async function failedResult(
  run: OnlineRun,
  err: unknown,
  message: string,
  o: { fence?: HeldFence; switched: boolean; targetLeft: boolean },
): Promise<MoveResult> {
  const { plan, rec } = run;
  const blocked = o.fence?.record.at ? Date.now() - Date.parse(o.fence.record.at) : undefined;
  if (!o.switched) await liftSwitchFence(run.deps, rec).catch(() => undefined);
  if (!o.switched) {
    const isVerify = err instanceof MoveVerifyError;
    await run.deps.db
      .transaction()
      .execute(async (tx) => {
        await updateTenant(tx, plan.tenant, { status: run.prevStatus as never, status_detail: run.prevDetail });
        await rec.update(
          {
            // The phase it failed in (the first not done), not the last one done: what `move status` shows.
            phase: failedPhase(run),
            error: message,
            targetCreated: o.targetLeft,
            ...(o.fence ? { fence: { ...o.fence.record, liftedAt: new Date().toISOString() } } : {}),
            writeBlockedMs: blocked,
            ...(isVerify ? { tables: err.checks } : {}),
          },
          isInterrupt(err) ? 'interrupted' : 'failed',
          tx,
        );
        await recordEvent(tx, {
          command: run.deps.command,
          action: isInterrupt(err) ? 'move interrupted' : 'move failed',
          result: 'failed',
          tenant: plan.tenant,
          details: {
            move: rec.id,
            ...(rec.args.online ? { online: true, via: rec.args.onlineVia } : {}),
            from: plan.from.target,
            to: plan.to.target,
            error: message,
          },
        });
      })
      .catch(() => undefined);
  }
  // The one rule (failure.ts): bad input, LOCKED and Ctrl-C end the command; the record and event are written above.
  if (endsCommand(err)) throw recordedFailure(err);
  return {
    tenant: plan.tenant,
    status: 'failed',
    ...onlineFields(run),
    move: rec.id,
    from: plan.from,
    to: plan.to,
    phases: run.clock.phases,
    writeBlockedMs: blocked,
    tables: err instanceof MoveVerifyError ? err.checks : undefined,
    resumed: run.resumed,
    durationMs: Date.now() - run.started,
    // What to do about it travels with the failure (a failed result is not thrown, so main.ts prints no hint).
    error: {
      code: err instanceof TenantctlError ? err.code : 'MOVE_FAILED',
      message,
      ...(err instanceof TenantctlError && err.hint ? { hint: err.hint } : {}),
    },
  };
}

/** The phase a move failed in: the first not done. */
function failedPhase(run: OnlineRun): PhaseName {
  return (run.rec.args.online ? ONLINE_PHASES : PHASES).find((p) => !run.clock.phases.some((x) => x.phase === p)) ?? 'unfence';
}

/** Report the failed phase (the first not done). */
export function reportFailedPhase(run: OnlineRun, err: unknown): void {
  run.deps.onPhase?.({ phase: failedPhase(run), state: 'failed', detail: errorMessage(err) });
}

/** The tests' tampered copy: one target row's text column changed before verification. */
export async function tamper(c: Pick<import('pg').ClientBase, 'query'>, plan: MovePlan): Promise<void> {
  const filter = drivers[plan.to.model].keyFilter('tenant_id', '', { param: '$1' });
  const mine = filter ? `where ${filter}` : 'where $1::text is not null';
  await c.query(
    `update ${qualified(plan.to.schema, 'tasks')} set ${ident('title')} = title || 'x' where ctid = (select ctid from ${qualified(plan.to.schema, 'tasks')} ${mine} limit 1)`,
    [plan.key],
  );
}
