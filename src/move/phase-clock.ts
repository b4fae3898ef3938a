import { existsSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { stopIfInterrupted } from './interrupt.js';
import type { MoveRecord } from './record.js';
import type { MoveDeps, PhaseName } from './types.js';

/**
 * The phases of one move as they run: each start is reported (and, before the switch, is where a
 * Ctrl-C stops the move), each end is timed, reported and recorded. Shared by the offline and the
 * online move.
 */
export function phaseClock(deps: Pick<MoveDeps, 'onPhase' | 'signal'>) {
  const phases: { phase: PhaseName; ms: number }[] = [];
  let mark = Date.now();
  const begin = (phase: PhaseName) => {
    if (phase !== 'unfence') stopIfInterrupted(deps.signal);
    mark = Date.now();
    deps.onPhase?.({ phase, state: 'start' });
  };
  const done = async (phase: PhaseName, rec?: MoveRecord, detail?: string) => {
    const ms = Date.now() - mark;
    phases.push({ phase, ms });
    deps.onPhase?.({ phase, state: 'done', ms, detail });
    await rec?.phaseDone(phase, ms);
    // Tests' kill point: once the phase is recorded done.
    if (process.env.TENANTCTL_INJECT_FAULT === `move-hang-after-${phase}`) await new Promise(() => setInterval(() => {}, 1000));
    // Tests' pause: until the file TENANTCTL_FAULT_RESUME_FILE exists (a shard stopped meanwhile).
    if (process.env.TENANTCTL_INJECT_FAULT === `move-pause-after-${phase}`) await untilResumed();
  };
  return { phases, begin, done };
}

async function untilResumed(): Promise<void> {
  const file = process.env.TENANTCTL_FAULT_RESUME_FILE;
  if (!file) throw new Error('move-pause-after-<phase> needs TENANTCTL_FAULT_RESUME_FILE');
  while (!existsSync(file)) await sleep(50);
}
