import { faultPoint } from '../operations/fault-points.js';
import type { CopyHooks } from './copy.js';
import { stopIfInterrupted } from './interrupt.js';
import type { MoveRecord } from './record.js';
import type { MoveDeps } from './types.js';

/**
 * The copy's progress as every move records it: rows and bytes to the caller and, throttled, to
 * the operation's heartbeat; after each table the record, then the `move.copy` fault point (the
 * tests' pause, until killed or Ctrl-C, or their `sleep` while the tenant writes) and the
 * interrupt check. `pauseAfter` limits the fault point to one table (the capture path pauses once).
 */
export function copyProgress(
  deps: Pick<MoveDeps, 'onProgress' | 'signal'>,
  rec: MoveRecord,
  total: { rows: number; bytes: number },
  pauseAfter?: string,
): Required<Pick<CopyHooks, 'onProgress' | 'afterTable'>> {
  return {
    onProgress: (p) => {
      total.rows = p.rows;
      total.bytes = p.bytes;
      deps.onProgress?.(p);
      void rec.heartbeat({ rows: p.rows, bytes: p.bytes }).catch(() => undefined);
    },
    afterTable: async (table) => {
      await rec.update({ rows: total.rows, bytes: total.bytes, lastTable: table });
      if (pauseAfter === undefined || table === pauseAfter) await faultPoint('move.copy', { signal: deps.signal });
      stopIfInterrupted(deps.signal);
    },
  };
}
