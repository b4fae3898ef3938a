import { errorMessage } from '../errors.js';
import type { MovePlan } from './plan.js';
import { markMoving, preflightAndFencePolicies } from './start.js';
import { onlinePreflight } from './online-preflight.js';
import { phaseClock } from './phase-clock.js';
import { MoveRecord } from './record.js';
import type { MoveDeps, MoveResult } from './types.js';
import type { OnlineRun } from './online-steps.js';
import { runOnlineMove } from './online-run.js';
import { runCaptureMove } from './online-capture-run.js';

/**
 * An online move: the read-only online checks decide the path (logical replication where the
 * role may create subscriptions, else trigger capture: online-preflight.ts), then the offline
 * preflight (which may migrate a pool target), the pool's fence policies, the operations row and
 * the tenant's `moving` status; then the path's run.
 */
export async function runOnline(
  deps: MoveDeps,
  plan: MovePlan,
  prevStatus: string,
  prevDetail: string | null,
  started: number,
  resumed: MoveResult['resumed'],
): Promise<MoveResult> {
  const { db } = deps;
  const clock = phaseClock(deps, started);
  clock.begin('preflight');
  const { via, pre } = await (async () => {
    // The online checks read only: they come before the offline preflight, which may migrate a pool target.
    const path = await onlinePreflight(deps, plan);
    return { via: path.via, pre: await preflightAndFencePolicies(deps, plan) };
  })().catch((err) => {
    deps.onPhase?.({ phase: 'preflight', state: 'failed', detail: errorMessage(err) });
    throw err;
  });
  const rec = await MoveRecord.start(db, {
    plan,
    status: prevStatus as never,
    statusDetail: prevDetail,
    resumedFrom: resumed?.move,
    online: true,
    onlineVia: via,
  });
  const migrated = pre.targetMigrated.length ? `target migrated: ${pre.targetMigrated.join(', ')}; ` : '';
  const run: OnlineRun = { deps, plan, prevStatus, prevDetail, started, resumed, pre, rec, clock };
  await markMoving(run, { online: true, via });
  await clock.done('preflight', rec, `${migrated}online via ${via === 'triggers' ? 'trigger capture' : 'logical replication'}`);
  return via === 'triggers' ? runCaptureMove(run) : runOnlineMove(run);
}
