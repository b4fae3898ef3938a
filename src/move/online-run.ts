import { refreshMaterializedViews } from '../build/matviews.js';
import { redactText } from '../config/redact.js';
import { lostConnectionError } from '../connection-loss.js';
import { errorMessage } from '../errors.js';
import { buildTarget } from './build-target.js';
import { advanceSequences, sequenceValues } from '../copy/sequences.js';
import type { HeldFence } from './fence.js';
import type { TableCheck } from './copy.js';
import { stopIfInterrupted } from './interrupt.js';
import { removeEnd } from './remove.js';
import { tablesAtSwitch } from './tables-at-switch.js';
import { replayTables } from './capture/replay.js';
import { checkChangedUnderFence, proveBeforeFence, withProofSlot, type ProofSlot, type ProofTable } from './online-proof.js';
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

/**
 * An online move (same model, another shard) with PostgreSQL logical replication: the target
 * placement is made at the source's version, a publication of the tenant's rows (a row filter on
 * its key in a pool) and a slot on the source, a subscription at the target copies them and
 * streams every later change while the tenant keeps writing. Still unfenced, a temporary slot
 * marks a position P and both sides are proven equal in every row not changed since P
 * (online-proof.ts). Only then is the tenant fenced, for the last catch-up (the WAL up to the
 * fence), after which only the rows changed since P are compared on both sides, the subscription
 * is stopped, sequences moved past the copied ids, the catalog switched in one transaction and the
 * fence lifted (`writeBlockedMs`: fence on → lifted); then the subscription, the slot and the
 * publication are dropped and the source measured for the report (tables-at-switch.ts).
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
    const tables = await proofTables(run);
    const checks = await withProofSlot(fleet, repl, plan.from.schema, tables, async (slot) => {
      // Still while the tenant writes: every row the stream has not changed since the slot's position, proven.
      const proof = await proveUnfenced(run, repl, slot, tables);
      // The proof predates the switch by what changes under the fence: measured again once it is lifted.
      await rec.update({ tablesPending: true });

      const fence = await fenceStep(run, held);
      begin('catch-up');
      // The fence waited for the tenant's in-flight writes: every committed write is before this position.
      await waitForCatchUp(fleet, repl, await sourcePosition(fleet, repl), FENCED_CATCH_UP_TIMEOUT_MS);
      await done('catch-up', rec);

      await verifyUnderFence(run, repl, slot, tables);
      return { proof, fence };
    });

    begin('switch');
    await switchCatalog(run, checks.proof);
    switched = true;
    await done('switch', rec);

    begin('unfence');
    const lifted = await liftAfterSwitch(run, checks.fence);
    const writeBlockedMs = lifted.writeBlockedMs;
    // Outside the write block. A shard that does not answer now leaves them recorded for the
    // tenant's next command's sweep (src/operations/sweep/moves.ts); the move itself has succeeded.
    let warning = lifted.warning;
    try {
      await dropReplication(fleet, repl);
      await noteRepl({ droppedAt: new Date().toISOString() });
    } catch (e) {
      warning = [warning, redactText(errorMessage(e))].filter(Boolean).join('; ');
    }
    // The move has switched: a source that cannot be measured now leaves `tablesPending` for
    // `move complete` or `move rollback` to measure (tables-at-switch.ts), not a failed move.
    const atSwitch = await tablesAtSwitch(deps, rec, plan, rec.progress).catch(() => checks.proof);
    await done('unfence', rec, warning);
    return switchedResult(run, atSwitch, writeBlockedMs, warning, { verifiedUnderFence: rec.progress.verifiedUnderFence });
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
 * The `copy` phase up to the proof: the target built, the publication and slot at the source, the
 * subscription at the target; its initial copy, then streaming until it has caught up with
 * everything committed so far (proveUnfenced ends the phase).
 */
async function copyAndStream(
  run: OnlineRun,
  repl: ReplicationRecord,
  noteRepl: (p: Partial<ReplicationRecord>) => Promise<void>,
): Promise<void> {
  const { deps, plan, pre, rec } = run;
  const { fleet, config } = deps;
  const { begin } = run.clock;
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
}

/** The published tables with their primary keys (the rows a change names), read at the source. */
async function proofTables(run: OnlineRun): Promise<ProofTable[]> {
  const { plan, pre } = run;
  const keyed = await run.deps.fleet.withClient(plan.from.shard, plan.from.database, (c) => replayTables(c, plan.from.schema, pre.tables));
  return pre.tables.map((t, i) => ({ ...t, pk: keyed[i].pk }));
}

/**
 * The end of the `copy` phase, while the tenant still writes: the target caught up with the proof
 * slot's position P (it holds everything committed before it), then every table proven on both
 * sides except the rows changed since P (online-proof.ts). A difference fails the move before any
 * write is blocked.
 */
async function proveUnfenced(run: OnlineRun, repl: ReplicationRecord, slot: ProofSlot, tables: ProofTable[]): Promise<TableCheck[]> {
  const { deps, plan, rec } = run;
  await waitForCatchUp(deps.fleet, repl, slot.lsn, CATCH_UP_TIMEOUT_MS);
  await faultPoint('move.verify', { signal: deps.signal });
  if (faultAction('move.verify')?.startsWith('tamper'))
    await deps.fleet.withClient(plan.to.shard, plan.to.database, (c) => tamper(c, plan));
  const { checks, changed } = await proveBeforeFence(run, slot, tables);
  assertSame(checks);
  await rec.update({ tables: checks });
  const n = [...changed.touched.values()].reduce((k, s) => k + s.size, 0);
  await run.clock.done(
    'copy',
    rec,
    `both sides proven equal at WAL ${slot.lsn} but for ${n} rows changed since (compared under the fence)`,
  );
  return checks;
}

/**
 * The `verify` phase, under the fence: only the rows changed since the proof's position, both
 * sides (online-proof.ts; the rest was proven before the fence and nothing changed it since), the
 * subscription stopped, the target's sequences moved past the copied ids.
 */
async function verifyUnderFence(run: OnlineRun, repl: ReplicationRecord, slot: ProofSlot, tables: ProofTable[]): Promise<void> {
  const { deps, plan, rec } = run;
  const { fleet } = deps;
  const { begin, done } = run.clock;
  begin('verify');
  const { checks } = await checkChangedUnderFence(run, slot, tables);
  // Nothing more of the tenant's can arrive: the subscription stops (its worker gone) before the
  // switch. It is dropped, with the slot and the publication, once writes flow again.
  await stopSubscription(fleet, repl);
  assertSame(checks);
  // Logical replication does not carry sequences: past the copied ids and what the source handed
  // out (its writes are fenced), before anyone writes there.
  const handedOut = await fleet.withClient(plan.from.shard, plan.from.database, (c) => sequenceValues(c, plan.from.schema));
  await fleet.withClient(plan.to.shard, plan.to.database, async (c) => {
    await advanceSequences(
      c,
      plan.to.schema,
      tables.map((t) => t.table),
      handedOut,
    );
    // Its own placement's materialized views were made empty by the build: over the rows now (a
    // pool's are every tenant's, not this move's to refresh).
    if (plan.to.model !== 'pool') await refreshMaterializedViews(c, plan.to.schema);
  });
  const verifiedUnderFence = { tables: checks.map((c) => c.table), rows: checks.reduce((n, c) => n + c.rows, 0) };
  await rec.update({ verifiedUnderFence });
  await done('verify', rec, `${verifiedUnderFence.rows} rows changed since the proof compared`);
}
