import { redactText } from '../config/redact.js';
import { copyProgress } from './copy-progress.js';
import { lostConnectionError } from '../connection-loss.js';
import { errorMessage } from '../errors.js';
import type { MovePlan } from './plan.js';
import type { HeldFence } from './fence.js';
import { copyAndVerify, MoveVerifyError, type TableCheck } from './copy.js';
import { buildTarget } from './build-target.js';
import { firedTriggersNote, movedForeignKeys, targetLoadRole } from './load-path.js';
import type { PoolLoadRole } from '../copy/pool-load-path.js';
import { phaseClock } from './phase-clock.js';
import { tamperCopy } from './tamper.js';
import { MoveRecord } from './record.js';
import { removeEnd } from './remove.js';
import { faultAction, faultPoint } from '../operations/fault-points.js';
import { markMoving, preflightAndFencePolicies, type MoveRun } from './start.js';
import { failedResult, fenceStep, liftAfterSwitch, reportFailedPhase, switchCatalog, switchedResult } from './online-steps.js';
import type { MoveDeps, MoveResult } from './types.js';

/** How the offline move loads into a pool: `--fast-load`, and the bound on its lock waits (`--lock-wait`). */
type LoadOptions = { fastLoad: boolean; lockWaitMs?: number };

/**
 * The offline move once planned: preflight, build the target while the tenant still writes,
 * fence, copy from one snapshot, rebuild what the load deferred, verify both sides, switch,
 * unfence. Every exit path lifts the fence; a copy that never switched is removed.
 */
export async function runMove(
  deps: MoveDeps,
  plan: MovePlan,
  prev: { status: string; detail: string | null },
  started: number,
  resumed: MoveResult['resumed'],
  load: LoadOptions,
): Promise<MoveResult> {
  const run = await startOffline(deps, plan, prev, started, resumed);
  const { rec, pre, clock } = run;
  const held: { fence?: HeldFence } = {};
  let switched = false;
  let loadRole: PoolLoadRole | undefined;
  try {
    // The target first, made and migrated at the source's version while the tenant still writes.
    clock.begin('build');
    const targetBuild = await buildTarget(deps, plan, pre.atVersion, rec);
    loadRole = await targetLoadRole(deps, plan);
    await clock.done('build', rec, targetBuild);
    const fence = await fenceStep(run, held);
    const checks = await copyInSnapshot(run, load);
    const foreignKeyCheck = movedForeignKeys(checks, loadRole);
    clock.begin('switch');
    await switchCatalog(run, checks, foreignKeyCheck);
    switched = true;
    await clock.done('switch', rec);
    clock.begin('unfence');
    const { writeBlockedMs, warning } = await liftAfterSwitch(run, fence);
    await clock.done('unfence', rec, warning);
    return switchedResult(run, checks, writeBlockedMs, warning, { targetBuild, foreignKeyCheck });
  } catch (caught) {
    // A shard or the catalog gone mid-move: one error naming it (the next move or rollback cleans up).
    const err = lostConnectionError(caught, `the move of ${plan.tenant}`) ?? caught;
    reportFailedPhase(run, err);
    if (held.fence) await held.fence.lift().catch(() => undefined);
    let targetLeft = false;
    if (!switched && rec.progress.targetCreated) {
      await removeEnd(deps, plan.tenant, plan.key, plan.to, plan.from, { lockWaitMs: load.lockWaitMs }).catch(() => {
        targetLeft = true;
      });
    }
    const note =
      err instanceof MoveVerifyError
        ? await firedTriggersNote(
            deps,
            plan,
            loadRole,
            pre.tables.map((t) => t.table),
          ).catch(() => '')
        : '';
    return failedResult(run, err, redactText(errorMessage(err)) + note, { fence: held.fence, switched, targetLeft });
  }
}

/** Preflight (refusal: nothing changed, exit 2), the record, the tenant `moving`. */
async function startOffline(
  deps: MoveDeps,
  plan: MovePlan,
  prev: { status: string; detail: string | null },
  started: number,
  resumed: MoveResult['resumed'],
): Promise<MoveRun> {
  const clock = phaseClock(deps, started);
  clock.begin('preflight');
  const pre = await preflightAndFencePolicies(deps, plan, { warm: true }).catch((err) => {
    deps.onPhase?.({ phase: 'preflight', state: 'failed', detail: errorMessage(err) });
    throw err;
  });
  const rec = await MoveRecord.start(deps.db, {
    plan,
    status: prev.status as never,
    statusDetail: prev.detail,
    resumedFrom: resumed?.move,
  });
  const run: MoveRun = { deps, plan, prevStatus: prev.status, prevDetail: prev.detail, started, resumed, pre, rec, clock };
  await markMoving(run, { targetMigrated: pre.targetMigrated });
  await clock.done('preflight', rec, pre.targetMigrated.length ? `target migrated: ${pre.targetMigrated.join(', ')}` : undefined);
  return run;
}

/**
 * The `copy`, `rebuild` and `verify` phases, from ONE source snapshot taken after the fence (every
 * committed write of the tenant is in it): into a pool in one transaction, or row by row in
 * committed parts (pool-split.ts); into a new placement table by table (fresh-parallel.ts).
 * Either way `targetCreated` is recorded first, so a failure or a kill removes what committed.
 */
async function copyInSnapshot(run: MoveRun, load: LoadOptions): Promise<TableCheck[]> {
  const { deps, plan, pre, rec, clock } = run;
  clock.begin('copy');
  // The phase it is in, for `move status` (phaseDone records the last one done: it said fence while copying).
  await rec.update({ targetCreated: true, rows: 0, bytes: 0, phase: 'copy' });
  const total = { rows: 0, bytes: 0 };
  const checks = await deps.fleet.withClient(plan.from.shard, plan.from.database, async (src) => {
    await src.query('begin isolation level repeatable read read only');
    try {
      return await copyAndVerify(
        deps,
        plan,
        src,
        pre.tables,
        {
          ...copyProgress(deps, rec, total),
          loaded: async () => {
            await clock.done('copy', rec);
            clock.begin('rebuild');
          },
          beforeVerify: async (tgt, schema, tables, o) => {
            await clock.done('rebuild', rec);
            clock.begin('verify');
            await faultPoint('move.verify', { signal: deps.signal });
            const action = faultAction('move.verify');
            if (action === 'tamper' && !o?.measured) await tamperCopy(tgt, schema, tables, plan);
            if (action === 'tamper-missing' && !o?.measured) await tamperCopy(tgt, schema, tables, plan, 'delete');
          },
          // A new placement's tables are measured as each is built, long before the verify phase.
          beforeTargetDigest: async (tgt, schema, table) => {
            if (faultAction('move.verify') === 'tamper') await tamperCopy(tgt, schema, [table], plan);
          },
        },
        { ...load, tableByTable: true, poolInParts: true },
      );
    } finally {
      await src.query('rollback').catch(() => undefined);
    }
  });
  // Verified, and the target's transaction committed: both are the verify phase.
  await clock.done('verify', rec);
  return checks;
}
