/**
 * Typed errors. One top-level catch (src/cli/main.ts) maps them to exit codes, so feature code
 * throws these and never calls process.exit itself.
 *
 * @example
 *   throw new UsageError('BAD_SLUG', 'slug "Acme" has upper case', 'use lowercase letters: acme');
 */
export type ErrorCode =
  | 'USAGE'
  | 'CONFIG_INVALID'
  | 'CONFIG_NOT_FOUND'
  | 'CONFIG_YAML'
  | 'CONFIG_ENV'
  | 'BAD_SLUG'
  | 'BAD_INPUT'
  | 'UNKNOWN_REGION'
  | 'UNKNOWN_SHARD'
  | 'UNKNOWN_TIER'
  | 'UNKNOWN_MODEL'
  | 'RESIDENCY'
  | 'TENANT_EXISTS'
  | 'TENANT_NOT_FOUND'
  | 'TENANT_STATE'
  | 'NEEDS_YES'
  | 'UNREACHABLE'
  | 'LOCKED'
  | 'INTERRUPTED'
  | 'MIGRATION_FILES'
  | 'MIGRATION_FAILED'
  | 'DRIFT'
  | 'DEV_PORT_TAKEN'
  | 'DEV_FAILED'
  | 'PROVISION_FAILED'
  | 'RLS_UNSAFE'
  | 'KEY_IN_USE'
  | 'DELETE_INCOMPLETE'
  | 'BAD_ARCHIVE'
  | 'BACKUP_NOT_FOUND'
  | 'BACKUP_KEY'
  | 'BACKUP_FAILED'
  | 'RESTORE_FAILED'
  | 'PG_DUMP'
  | 'MOVE_FAILED'
  | 'MOVE_VERIFY'
  | 'ONLINE_UNAVAILABLE'
  | 'INTERNAL';

export const EXIT = { ok: 0, failed: 1, usage: 2, locked: 3, interrupted: 130 } as const;

export class TenantctlError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    /** What the operator should do about it; printed after the message. */
    readonly hint?: string,
    readonly exitCode: number = EXIT.failed,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'TenantctlError';
  }
}

/** Bad input, usage or configuration: exit 2, nothing changed. */
export class UsageError extends TenantctlError {
  constructor(code: ErrorCode, message: string, hint?: string, options?: { cause?: unknown }) {
    super(code, message, hint, EXIT.usage, options);
    this.name = 'UsageError';
  }
}

/** Another run holds the lock: exit 3. */
export class LockedError extends TenantctlError {
  constructor(message: string, hint = 'wait for it to finish, or pass --wait') {
    super('LOCKED', message, hint, EXIT.locked);
    this.name = 'LockedError';
  }
}

export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
