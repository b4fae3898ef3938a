import { redactText } from '../config/redact.js';
import { TenantctlError, errorMessage } from '../errors.js';
import { endsCommand } from '../operations/failure.js';
import { InterruptedError, isInterrupt } from '../operations/interrupt.js';
import type { OperationRun } from '../operations/tenant-operation.js';
import type { RestoreResult } from './restore.js';

/**
 * A restore that failed, as both paths end it (restore-run.ts, restore-replace.ts): a placement it
 * could not remove keeps its record running for the sweep and is named; Ctrl-C says what was
 * undone; anything else is the engine's one failure row.
 */
export async function failed(
  run: OperationRun,
  base: { tenant: string; backup: string; model: string; region: string; shard: string; target: string },
  started: number,
  err: unknown,
  leftover: string | undefined,
  undone: string,
): Promise<RestoreResult> {
  let failure = err;
  if (leftover !== undefined) {
    // Its record stays running: the next restore of the tenant removes the placement (the sweep, src/operations/sweep/restores.ts).
    const note = `what it made could not be removed yet (${leftover}): the next restore of ${base.tenant} removes it`;
    if (run.op) run.op.keep = true;
    await run.op?.phase('failed', { error: `${redactText(errorMessage(err))}; ${note}` }).catch(() => undefined);
    undone = `${undone}; ${note}`;
    if (!endsCommand(err))
      failure = new TenantctlError(err instanceof TenantctlError ? err.code : 'RESTORE_FAILED', `${errorMessage(err)}; ${note}`);
  }
  // Ctrl-C: the step it was in is undone; the engine says so, and how to finish.
  if (isInterrupt(err)) throw new InterruptedError(undone);
  const error = await run.fail(failure, 'RESTORE_FAILED', { backup: base.backup });
  return { ...base, status: 'failed', durationMs: Date.now() - started, error };
}
