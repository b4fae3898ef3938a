import { redactText } from '../config/redact.js';
import { EXIT, TenantctlError, UsageError, errorMessage, type ErrorCode } from '../errors.js';

/**
 * The ONE rule for what a failed per-tenant operation does with its error: bad input (exit 2),
 * a busy tenant (LOCKED, exit 3) and Ctrl-C (INTERRUPTED, exit 130) end the command as a whole
 * and are rethrown; anything else becomes the operation's result row, with the error's own code
 * or the verb's `fallback` (BACKUP_FAILED, RESTORE_FAILED, MOVE_FAILED, PROVISION_FAILED).
 */
export function resultError(err: unknown, fallback: ErrorCode): { code: string; message: string } {
  if (endsCommand(err)) throw err;
  return { code: err instanceof TenantctlError ? err.code : fallback, message: redactText(errorMessage(err)) };
}

/** Bad input, a lock conflict or an interrupt: the whole command's exit code, not a result row. */
export function endsCommand(err: unknown): boolean {
  if (err instanceof UsageError) return true;
  return err instanceof TenantctlError && (err.exitCode === EXIT.locked || err.exitCode === EXIT.interrupted);
}
