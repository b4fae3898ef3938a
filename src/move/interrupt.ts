import { InterruptedError } from '../operations/interrupt.js';

export { isInterrupt } from '../operations/interrupt.js';

/**
 * Ctrl-C (or SIGTERM) during a move: checked where stopping is clean (before each phase until the
 * switch, between tables, while waiting for replication). The move's failure path then lifts the
 * fence and removes the copy, as for any failure, and the move is recorded as interrupted; the
 * engine (src/operations/tenant-operation.ts) adds the command that starts it again. Once the
 * catalog has switched, the move finishes instead (only the fence is left to lift).
 */
export function stopIfInterrupted(signal: AbortSignal | undefined, next?: string): void {
  if (!signal?.aborted) return;
  // Said as it is: before the build nothing was made, before the fence no write was refused.
  if (next === 'preflight') throw new InterruptedError('stopped before the move started: nothing was made; the tenant stays where it was');
  if (next === 'build' || next === 'fence')
    throw new InterruptedError(
      `stopped before ${next === 'build' ? 'the target was built' : 'the write fence'}: what was made at the target was removed; the tenant stays where it was and its writes never stopped`,
    );
  throw new InterruptedError('stopped before the switch: the write fence was lifted and the copy removed; the tenant stays where it was');
}
