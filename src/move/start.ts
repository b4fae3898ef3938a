import { updateTenant } from '../catalog/tenants.js';
import { recordEvent } from '../catalog/events.js';
import { TenantctlError, errorMessage } from '../errors.js';
import type { MovePlan } from './plan.js';
import { preflight, type Preflight } from './preflight.js';
import { preparePoolFence } from './fence.js';
import type { phaseClock } from './phase-clock.js';
import type { MoveRecord } from './record.js';
import type { MoveDeps, MoveResult } from './types.js';

/** What every move's run shares once it is recorded (offline, and both online paths). */
export interface MoveRun {
  deps: MoveDeps;
  plan: MovePlan;
  prevStatus: string;
  prevDetail: string | null;
  started: number;
  resumed: MoveResult['resumed'];
  pre: Preflight;
  rec: MoveRecord;
  clock: ReturnType<typeof phaseClock>;
}

/**
 * The offline preflight (which may migrate a pool target), then the pool's fence policies: the
 * DDL on shared tables happens here, before anything is recorded or any write blocked.
 */
export async function preflightAndFencePolicies(deps: MoveDeps, plan: MovePlan, o: { warm?: boolean } = {}): Promise<Preflight> {
  const pre = await preflight(deps, plan, o);
  await preparePoolFence(deps.fleet, deps.config, plan.from).catch((err) => {
    throw new TenantctlError(
      'MOVE_FAILED',
      `installing the write-fence policies in ${plan.from.target} failed: ${errorMessage(err)}; nothing was changed`,
      'a long transaction may hold the pool tables: try again when it has ended',
    );
  });
  return pre;
}

/** The tenant is `moving` (naming the move) and the event `move started`, in one transaction. */
export async function markMoving(
  run: Pick<MoveRun, 'deps' | 'plan' | 'rec' | 'pre'>,
  details: Record<string, unknown> = {},
): Promise<void> {
  const { deps, plan, rec, pre } = run;
  const online = rec.args.online ? 'online ' : '';
  await deps.db.transaction().execute(async (tx) => {
    await updateTenant(tx, plan.tenant, { status: 'moving', status_detail: `moving ${online}to ${plan.to.target} (move ${rec.id})` });
    await recordEvent(tx, {
      command: deps.command,
      action: 'move started',
      result: 'started',
      tenant: plan.tenant,
      details: { move: rec.id, ...details, from: plan.from.target, to: plan.to.target, version: pre.version },
    });
  });
}
