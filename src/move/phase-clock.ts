import { FAULT_POINTS, faultPoint, type FaultPointName } from '../operations/fault-points.js';
import { stopIfInterrupted } from './interrupt.js';
import type { MoveRecord } from './record.js';
import type { MoveDeps, PhaseName } from './types.js';

/**
 * The phases of one move as they run: each start is reported (and, before the switch, is where a
 * Ctrl-C stops the move), each end is timed, reported and recorded. Shared by the offline and the
 * online move. The phases are contiguous: each is timed from the end of the one before (the first
 * from `started`, the command's start, so the tenant's lock, the sweep and the plan count as
 * preflight), so whatever runs between two phases is inside the next one and the phases add up to
 * the move's duration: no time sits outside a reported phase.
 */
export function phaseClock(deps: Pick<MoveDeps, 'onPhase' | 'signal' | 'assertLocked'>, started = Date.now()) {
  const phases: { phase: PhaseName; ms: number }[] = [];
  let mark = started;
  const begin = (phase: PhaseName) => {
    if (phase !== 'unfence') {
      stopIfInterrupted(deps.signal, phase);
      // The tenant's lock went with a lost catalog session: no further phase (the switch above all).
      deps.assertLocked?.();
    }
    deps.onPhase?.({ phase, state: 'start' });
  };
  const done = async (phase: PhaseName, rec?: MoveRecord, detail?: string) => {
    const end = Date.now();
    const ms = end - mark;
    mark = end;
    phases.push({ phase, ms });
    deps.onPhase?.({ phase, state: 'done', ms, detail });
    await rec?.phaseDone(phase, ms);
    // Tests' kill point: once the phase is recorded done.
    const point = `move.after-${phase}`;
    if (point in FAULT_POINTS) await faultPoint(point as FaultPointName, { signal: deps.signal });
  };
  return { phases, begin, done };
}
