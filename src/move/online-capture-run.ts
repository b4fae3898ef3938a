import { refreshMaterializedViews } from '../build/matviews.js';
import { redactText } from '../config/redact.js';
import { copyProgress } from './copy-progress.js';
import { lostConnectionError } from '../connection-loss.js';
import { TenantctlError, errorMessage } from '../errors.js';
import { advanceSequences, sequenceValues } from '../copy/sequences.js';
import type { HeldFence } from './fence.js';
import { buildTarget } from './build-target.js';
import { copyAndVerify, type TableCheck } from './copy.js';
import { stopIfInterrupted } from './interrupt.js';
import { removeEnd } from './remove.js';
import type { MoveResult } from './types.js';
import { captureRecordFor, installCapture, type CaptureRecord } from './capture/install.js';
import { Replayer, replayTables, type ReplayTable, type RoundResult } from './capture/replay.js';
import { removeCapture } from './capture/remove.js';
import { faultAction, faultPoint } from '../operations/fault-points.js';
import { tablesAtSwitch } from './tables-at-switch.js';
import {
  assertSame,
  bothSides,
  failedResult,
  fenceStep,
  liftAfterSwitch,
  reportFailedPhase,
  switchCatalog,
  switchedResult,
  tamper,
  type OnlineRun,
} from './online-steps.js';

/** Replay rounds before the fence: the lag is small once a round applied this few changes, or took this little time. */
const SMALL_LAG_CHANGES = 200;
const SMALL_LAG_MS = 250;
/** Rounds before the fence may take this long in all (a writer faster than replay never converges). */
const CATCH_UP_TIMEOUT_MS = 3600_000;

/**
 * An online move where the role may not create subscriptions (online-preflight.ts): trigger
 * capture. Triggers on the tenant's tables at the source (on a pool's shared tables only for the
 * tenant's rows) write each change to a change table in tenantctl's schema there
 * (capture/install.ts); then ONE repeatable-read snapshot is copied and verified by the offline
 * move's machinery (copy.ts: the target created at the source's version with the rows, or loaded
 * into the pool, in one transaction); then the changes committed after that snapshot are replayed
 * round after round while the tenant keeps writing (capture/replay.ts), until a round is small;
 * then one round proves the copy whole (every table's digests on both sides, sqlDigest, the source
 * read in that round's snapshot) still without blocking writes. Only then is the tenant fenced,
 * for the last round (everything committed before the fence) and a digest of just the rows changed
 * since the proof on both sides; sequences moved past the ids, the catalog switched and the fence
 * lifted (`writeBlockedMs`); then the triggers and the change table are removed. Every exit path removes them (the record names them before they are made; a killed
 * mover's are removed by the next move or `move rollback`, recover.ts).
 */
export async function runCaptureMove(run: OnlineRun): Promise<MoveResult> {
  const { deps, plan, pre, rec } = run;
  const { fleet, config } = deps;
  const { begin, done } = run.clock;
  const capture: CaptureRecord = captureRecordFor(rec.id, plan.from, pre.tables);
  const held: { fence?: HeldFence } = {};
  let switched = false;
  try {
    const { snapshot, tables, total } = await copyAtSnapshot(run, capture);
    const replayer = new Replayer(fleet, capture, plan.to, plan.key, tables, config, snapshot);
    const measure = bothSides(fleet, config, plan);
    const { checks, since, replayed } = await replayAndProve(run, replayer, measure, total);
    // The proof predates the switch by what is replayed under the fence: measured again once it is lifted.
    await rec.update({ tablesPending: true });

    const fence = await fenceStep(run, held);

    await lastRoundAndDelta(run, replayer, measure, { since, replayed, tables });

    begin('switch');
    await switchCatalog(run, checks);
    switched = true;
    await done('switch', rec);

    begin('unfence');
    const lifted = await liftAfterSwitch(run, fence);
    const writeBlockedMs = lifted.writeBlockedMs;
    // Outside the write block: a table that stays locked now leaves the triggers recorded for the
    // tenant's next command's sweep (src/operations/sweep/moves.ts); the move itself has succeeded.
    let warning = lifted.warning;
    try {
      await removeCapture(fleet, capture);
      await rec.update({ capture: { ...capture, removedAt: new Date().toISOString() } });
    } catch (e) {
      warning = [warning, redactText(errorMessage(e))].filter(Boolean).join('; ');
    }
    // The move has switched: a source that cannot be measured now leaves `tablesPending` for
    // `move complete` or `move rollback` to measure, not a failed move.
    const atSwitch = await tablesAtSwitch(deps, rec, plan, rec.progress).catch(() => checks);
    await done('unfence', rec, warning);
    return switchedResult(run, atSwitch, writeBlockedMs, warning);
  } catch (caught) {
    // A shard or the catalog gone mid-move: one error naming it (the next move or rollback cleans up).
    const err = lostConnectionError(caught, `the move of ${plan.tenant}`) ?? caught;
    reportFailedPhase(run, err);
    let message = redactText(errorMessage(err));
    // Every exit path: writes flow again first, then the capture goes (its locks wait for them), then the copy.
    if (held.fence) await held.fence.lift().catch(() => undefined);
    if (rec.progress.capture) {
      try {
        await removeCapture(fleet, capture);
        await rec.update({ capture: { ...capture, removedAt: new Date().toISOString() } });
      } catch (e) {
        message += `; ${redactText(errorMessage(e))}`;
      }
    }
    let targetLeft = false;
    if (!switched && rec.progress.targetCreated) {
      await removeEnd(deps, plan.tenant, plan.key, plan.to, plan.from).catch(() => {
        targetLeft = true;
      });
    }
    return failedResult(run, err, message, { fence: held.fence, switched, targetLeft });
  }
}

/**
 * The first part of the `copy` phase: the target built, the capture installed, then ONE
 * repeatable-read snapshot (taken after every trigger is in place: a change is either in it or
 * captured) copied and verified by the offline move's machinery.
 */
async function copyAtSnapshot(run: OnlineRun, capture: CaptureRecord) {
  const { deps, plan, pre, rec } = run;
  const { fleet, config } = deps;
  const { begin } = run.clock;
  begin('copy');
  // An exclusive target is built empty at the source's version first (build-target.ts; the
  // capture path never fences for it), recorded before it is made.
  await buildTarget(deps, plan, pre.atVersion, rec);
  // Recorded before anything is made: a kill from here on leaves what the next command removes.
  await rec.update({ capture });
  await installCapture(fleet, capture, plan.from.model, plan.key, pre.tables, config);
  await rec.update({ targetCreated: true, rows: 0, bytes: 0 });
  const total = { rows: 0, bytes: 0 };
  let snapshot = '';
  let tables: ReplayTable[] = [];
  await fleet.withClient(plan.from.shard, plan.from.database, async (src) => {
    // ONE snapshot, taken after every trigger is in place: a change is either in it or captured.
    await src.query('begin isolation level repeatable read read only');
    try {
      snapshot = (await src.query<{ s: string }>('select pg_current_snapshot()::text as s')).rows[0].s;
      tables = await replayTables(src, plan.from.schema, pre.tables);
      // The tests' pause after the first table: changes after the snapshot are replayed.
      return await copyAndVerify(deps, plan, src, pre.tables, copyProgress(deps, rec, total, pre.tables[0].table));
    } finally {
      await src.query('rollback').catch(() => undefined);
    }
  });
  return { snapshot, tables, total };
}

type Since = { touched: Map<string, string[]>; truncated: Set<string> };

/** A round's changes added to what changed since the proof. */
function note(since: Since, r: RoundResult): void {
  for (const [t, imgs] of r.touched) since.touched.set(t, [...(since.touched.get(t) ?? []), ...imgs]);
  for (const t of r.truncated) since.truncated.add(t);
}

/**
 * Replay rounds while the tenant writes, until one is small; then one round proves the whole copy
 * (every table's digests on both sides, the source read in the round's snapshot), and rounds go
 * on until small again. Returns the proof and what changed since it (all the check under the
 * fence compares). Ends the `copy` phase.
 */
async function replayAndProve(
  run: OnlineRun,
  replayer: Replayer,
  measure: ReturnType<typeof bothSides>,
  total: { rows: number; bytes: number },
) {
  const { deps, plan, pre, rec } = run;
  const { fleet } = deps;
  const { done } = run.clock;
  let checks: TableCheck[] = [];
  const deadline = Date.now() + CATCH_UP_TIMEOUT_MS;
  let replayed = 0;
  // The rows changed after the full proof below: all that the check under the fence compares.
  const since: Since = { touched: new Map<string, string[]>(), truncated: new Set<string>() };
  let ready = false;
  let proven = false;
  for (;;) {
    stopIfInterrupted(deps.signal);
    // Once the lag is small, one round proves the whole copy while the tenant keeps writing:
    // after the target committed the round, every table's digests on both sides, the source
    // read in the round's snapshot, the state the target now holds.
    const prove = ready && !proven;
    const r = await replayer.round(
      prove
        ? {
            atSnapshot: async (src) => {
              await faultPoint('move.verify', { signal: deps.signal });
              if (faultAction('move.verify')?.startsWith('tamper'))
                await fleet.withClient(plan.to.shard, plan.to.database, (c) => tamper(c, plan));
              checks = await Promise.all(pre.tables.map((tb) => measure(tb, { source: src })));
              assertSame(checks);
            },
          }
        : {},
    );
    replayed += r.changes;
    deps.onProgress?.({ table: `${replayed} changes replayed`, rows: total.rows, bytes: total.bytes });
    void rec.heartbeat({ replayed }).catch(() => undefined);
    if (prove) proven = true;
    else if (proven) note(since, r);
    ready = r.changes <= SMALL_LAG_CHANGES || r.ms <= SMALL_LAG_MS;
    if (proven && ready) break;
    if (Date.now() > deadline) {
      throw new TenantctlError(
        'MOVE_FAILED',
        `the replay of ${plan.tenant}'s changes did not catch up within ${CATCH_UP_TIMEOUT_MS / 60_000} min (last round: ${r.changes} changes in ${r.ms} ms)`,
        'the tenant writes faster than its changes are replayed: try again at a quieter time, or move it offline',
      );
    }
  }
  await rec.update({ replayed, tables: checks });
  await done('copy', rec, `${replayed} changes replayed, both sides proven equal at a snapshot`);
  return { checks, since, replayed };
}

/**
 * Under the fence: the `catch-up` phase (the last round: the fence waited for the tenant's
 * in-flight writes, so it holds every change it committed), then `verify`: only what changed
 * since the proof, both sides, and the target's sequences past the replayed ids.
 */
async function lastRoundAndDelta(
  run: OnlineRun,
  replayer: Replayer,
  measure: ReturnType<typeof bothSides>,
  o: { since: Since; replayed: number; tables: ReplayTable[] },
): Promise<void> {
  const { deps, plan, pre, rec } = run;
  const { fleet } = deps;
  const { begin, done } = run.clock;
  const { since, replayed, tables } = o;
  begin('catch-up');
  // The fence waited for the tenant's in-flight writes: this round holds every change it committed.
  const last = await replayer.round();
  note(since, last);
  await rec.update({ replayed: replayed + last.changes });
  await done('catch-up', rec, `${last.changes} changes`);

  begin('verify');
  // Under the fence only what changed since the proof: the rows of every primary key replayed
  // since (both sides, by the same digest), a table emptied by TRUNCATE in full.
  const byName = new Map(tables.map((t) => [t.table, t]));
  const delta = await Promise.all(
    pre.tables
      .filter((tb) => since.truncated.has(tb.table) || since.touched.has(tb.table))
      .map((tb) =>
        since.truncated.has(tb.table)
          ? measure(tb)
          : measure(tb, { only: { pk: byName.get(tb.table)!.pk, images: `[${since.touched.get(tb.table)!.join(',')}]` } }),
      ),
  );
  assertSame(delta);
  // Replayed rows carry their own ids: the target's sequences past them and past what the source
  // handed out (its writes are fenced), before anyone writes there.
  const handedOut = await fleet.withClient(plan.from.shard, plan.from.database, (c) => sequenceValues(c, plan.from.schema));
  await fleet.withClient(plan.to.shard, plan.to.database, async (c) => {
    await advanceSequences(
      c,
      plan.to.schema,
      pre.tables.map((t) => t.table),
      handedOut,
    );
    // Its own placement's materialized views were made empty by the build: over the rows now (a
    // pool's are every tenant's, not this move's to refresh).
    if (plan.to.model !== 'pool') await refreshMaterializedViews(c, plan.to.schema);
  });
  await done('verify', rec, `${delta.reduce((n, c) => n + c.rows, 0)} changed rows compared`);
}
