import { updateTenant } from '../catalog/tenants.js';
import { recordEvent } from '../catalog/events.js';
import { TenantctlError, errorMessage } from '../errors.js';
import type { MovePlan } from './plan.js';
import { preflight } from './preflight.js';
import { onlinePreflight } from './online-preflight.js';
import { preparePoolFence } from './fence.js';
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
  const { db, fleet, config } = deps;
  const clock = phaseClock(deps);
  clock.begin('preflight');
  const { via, pre } = await (async () => {
    // The online checks read only: they come before the offline preflight, which may migrate a pool target.
    const path = await onlinePreflight(deps, plan);
    const p = await preflight(deps, plan);
    await preparePoolFence(fleet, config, plan.from).catch((err) => {
      throw new TenantctlError(
        'MOVE_FAILED',
        `installing the write-fence policies in ${plan.from.target} failed: ${errorMessage(err)}; nothing was changed`,
        'a long transaction may hold the pool tables: try again when it has ended',
      );
    });
    return { via: path.via, pre: p };
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
  await clock.done('preflight', rec, `${migrated}online via ${via === 'triggers' ? 'trigger capture' : 'logical replication'}`);
  await db.transaction().execute(async (tx) => {
    await updateTenant(tx, plan.tenant, { status: 'moving', status_detail: `moving online to ${plan.to.target} (move ${rec.id})` });
    await recordEvent(tx, {
      command: deps.command,
      action: 'move started',
      result: 'started',
      tenant: plan.tenant,
      details: { move: rec.id, online: true, via, from: plan.from.target, to: plan.to.target, version: pre.version },
    });
  });
  const run: OnlineRun = { deps, plan, prevStatus, prevDetail, started, resumed, pre, rec, clock };
  return via === 'triggers' ? runCaptureMove(run) : runOnlineMove(run);
}
