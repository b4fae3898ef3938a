import { setTimeout as sleep } from 'node:timers/promises';
import { redactText } from '../config/redact.js';
import { lostConnectionError } from '../connection-loss.js';
import { errorMessage } from '../errors.js';
import { buildTarget } from './build-target.js';
import { advanceSequences } from '../copy/sequences.js';
import type { HeldFence } from './fence.js';
import type { TableCheck } from './copy.js';
import { stopIfInterrupted } from './interrupt.js';
import { removeEnd } from './remove.js';
import {
  createSourceSide,
  createSubscription,
  dropReplication,
  publicationSql,
  replicationRecordFor,
  sourcePosition,
  stopSubscription,
  waitForCatchUp,
  waitForSync,
  type ReplicationRecord,
} from './replication.js';
import type { MoveResult } from './types.js';
import {
  assertSame,
  bothSides,
  differs,
  failedResult,
  fenceStep,
  liftAfterSwitch,
  reportFailedPhase,
  switchCatalog,
  switchedResult,
  tamper,
  type OnlineRun,
} from './online-steps.js';
import { faultAction, faultPoint } from '../operations/fault-points.js';

/** How long the initial copy may take, and the catch-ups before and under the fence. */
const SYNC_TIMEOUT_MS = 6 * 3600_000;
const CATCH_UP_TIMEOUT_MS = 3600_000;
/** Writes are blocked while the last changes arrive: never longer than this. */
const FENCED_CATCH_UP_TIMEOUT_MS = 30_000;

/** A difference is measured again this many times, this far apart, before it counts (see verify). */
const VERIFY_RETRIES = 10;
const VERIFY_RETRY_MS = 300;

/**
 * An online move (same model, another shard) with PostgreSQL logical replication: the target
 * placement is made at the source's version, a publication of the tenant's rows (a row filter on
 * its key in a pool) and a slot on the source, a subscription at the target copies them and
 * streams every later change while the tenant keeps writing. Only then is the tenant fenced, for
 * the last catch-up (the WAL up to the fence), after which the subscription is stopped, both sides
 * are verified by the offline move's digests, sequences moved past the copied ids, the catalog
 * switched in one transaction and the fence lifted (`writeBlockedMs`: fence on → lifted); then the
 * subscription, the slot and the publication are dropped.
 * Every exit path drops the publication, the slot and the subscription; a killed mover's are
 * named in its operations row and dropped by the next move or `move rollback` (recover.ts).
 */
export async function runOnlineMove(run: OnlineRun): Promise<MoveResult> {
  const { deps, plan, rec } = run;
  const { fleet } = deps;
  const { begin, done } = run.clock;

  const repl: ReplicationRecord = replicationRecordFor(rec.id, plan.from, plan.to);
  const noteRepl = async (patch: Partial<ReplicationRecord>) => {
    Object.assign(repl, patch);
    await rec.update({ replication: { ...repl } });
  };
  const held: { fence?: HeldFence } = {};
  let switched = false;
  try {
    await copyAndStream(run, repl, noteRepl);

    const fence = await fenceStep(run, held);

    begin('catch-up');
    // The fence waited for the tenant's in-flight writes: every committed write is before this position.
    await waitForCatchUp(fleet, repl, await sourcePosition(fleet, repl), FENCED_CATCH_UP_TIMEOUT_MS);
    await done('catch-up', rec);

    const checks = await verifyUnderFence(run, repl);

    begin('switch');
    await switchCatalog(run, checks);
    switched = true;
    await done('switch', rec);

    begin('unfence');
    const writeBlockedMs = await liftAfterSwitch(run, fence);
    // Outside the write block. A shard that does not answer now leaves them recorded for the
    // tenant's next command's sweep (src/operations/sweep/moves.ts); the move itself has succeeded.
    let warning: string | undefined;
    try {
      await dropReplication(fleet, repl);
      await noteRepl({ droppedAt: new Date().toISOString() });
    } catch (e) {
      warning = redactText(errorMessage(e));
    }
    await done('unfence', rec, warning);
    return switchedResult(run, checks, writeBlockedMs, warning);
  } catch (caught) {
    // A shard or the catalog gone mid-move: one error naming it (the next move or rollback cleans up).
    const err = lostConnectionError(caught, `the move of ${plan.tenant}`) ?? caught;
    reportFailedPhase(run, err);
    let message = redactText(errorMessage(err));
    // Every exit path: replication dropped first (the subscription writes into the target), then the fence lifted.
    // move-tamper-keep-replication: the tests' stand-in for a source that does not answer now.
    if (!repl.droppedAt && faultAction('move.verify') !== 'tamper-keep-replication') {
      try {
        await dropReplication(fleet, repl);
        await noteRepl({ droppedAt: new Date().toISOString() });
      } catch (e) {
        message += `; ${redactText(errorMessage(e))}`;
      }
    }
    if (held.fence) await held.fence.lift().catch(() => undefined);
    if (!switched && rec.progress.targetCreated && repl.droppedAt) {
      await removeEnd(deps, plan.tenant, plan.key, plan.to, plan.from).catch(() => undefined);
    }
    // A target still fed by a subscription that could not be dropped stays recorded for the next command.
    return failedResult(run, err, message, {
      fence: held.fence,
      switched,
      targetLeft: Boolean(rec.progress.targetCreated && !repl.droppedAt),
    });
  }
}

/**
 * The `copy` phase: the target built, the publication and slot at the source, the subscription at
 * the target; its initial copy, then streaming until it has caught up with everything committed so far.
 */
async function copyAndStream(
  run: OnlineRun,
  repl: ReplicationRecord,
  noteRepl: (p: Partial<ReplicationRecord>) => Promise<void>,
): Promise<void> {
  const { deps, plan, pre, rec } = run;
  const { fleet, config } = deps;
  const { begin, done } = run.clock;
  begin('copy');
  await noteRepl({});
  // Recorded before it is made: a kill from here on leaves a target the next command removes.
  await rec.update({ targetCreated: true, rows: 0, bytes: 0 });
  // An exclusive target is built empty at the source's version (the subscription fills it), as the offline move's.
  await buildTarget(deps, plan, pre.atVersion, rec);
  await createSourceSide(fleet, repl, publicationSql(repl.name, plan.from, plan.key, pre.tables, config), noteRepl);
  await createSubscription(fleet, repl, fleet.shard(plan.from.shard).url, noteRepl);
  await waitForSync(fleet, repl, SYNC_TIMEOUT_MS, (s) => {
    stopIfInterrupted(deps.signal);
    deps.onProgress?.({ table: `${s.ready}/${s.tables} tables copied`, rows: 0, bytes: 0 });
    void rec.heartbeat({ tablesReady: s.ready }).catch(() => undefined);
  });
  // The tests' pause (until killed or Ctrl-C), or their proof that streamed changes (not only
  // the initial copy) arrive (`sleep`: the tenant writes meanwhile).
  if (faultAction('move.copy')) await rec.update({ lastTable: pre.tables.at(-1)?.table });
  await faultPoint('move.copy', { signal: deps.signal });
  // Streaming: catch up with everything committed so far while the tenant still writes.
  await waitForCatchUp(fleet, repl, await sourcePosition(fleet, repl), CATCH_UP_TIMEOUT_MS);
  await done('copy', rec);
}

/**
 * The `verify` phase, under the fence: both sides of every table, measured again for a while
 * where they differ (the apply worker may still be making the last changes visible), the
 * subscription stopped, the target's sequences moved past the copied ids.
 */
async function verifyUnderFence(run: OnlineRun, repl: ReplicationRecord): Promise<TableCheck[]> {
  const { deps, plan, pre, rec } = run;
  const { fleet, config } = deps;
  const { begin, done } = run.clock;
  begin('verify');
  await faultPoint('move.verify', { signal: deps.signal });
  const tables = pre.tables;
  if (faultAction('move.verify')?.startsWith('tamper')) await fleet.withClient(plan.to.shard, plan.to.database, (c) => tamper(c, plan));
  const measure = bothSides(fleet, config, plan);
  let checks = await Promise.all(tables.map((tb) => measure(tb)));
  // Under the fence the source no longer changes, so the target can only lag by changes still
  // being applied (the walsender's reported position has been seen ahead of what the apply
  // worker had made visible): the subscription keeps running and differing tables are measured
  // again for a few seconds before a difference counts.
  for (let i = 0; i < VERIFY_RETRIES && checks.some(differs); i++) {
    await sleep(VERIFY_RETRY_MS);
    checks = await Promise.all(checks.map((c, j) => (differs(c) ? measure(tables[j]) : c)));
  }
  // Nothing more of the tenant's can arrive: the subscription stops (its worker gone) before the
  // switch. It is dropped, with the slot and the publication, once writes flow again.
  await stopSubscription(fleet, repl);
  assertSame(checks);
  // Logical replication does not carry sequences: past the copied ids, before anyone writes there.
  await fleet.withClient(plan.to.shard, plan.to.database, (c) =>
    advanceSequences(
      c,
      plan.to.schema,
      tables.map((t) => t.table),
    ),
  );
  await done('verify', rec);
  return checks;
}
