import { FAULT_POINTS, faultPoint, type FaultPointName } from '../operations/fault-points.js';
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
    const point = `move.after-${phase}`;
    if (point in FAULT_POINTS) await faultPoint(point as FaultPointName, { signal: deps.signal });
  };
  return { phases, begin, done };
}
