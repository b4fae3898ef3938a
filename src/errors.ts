/**
 * Typed errors and the one vocabulary of error codes. One top-level catch (src/cli/run.ts) maps
 * them to exit codes, so feature code throws these and never calls process.exit itself. Result
 * rows (a failed target, a tenant not run) carry the same codes.
 *
 * @example
 *   throw new UsageError('BAD_SLUG', 'slug "Acme" has upper case', 'use lowercase letters: acme');
 */

/** Every exit code tenantctl gives, by meaning. Nothing else writes a number to process.exit. */
export const EXIT = { ok: 0, failed: 1, usage: 2, locked: 3, interrupted: 130 } as const;
export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

interface CodeInfo {
  /** The exit code when an error with this code ends the command (a thrower may say otherwise). */
  exit: ExitCode;
  /** What to do about it, when the thrower gives no more specific hint. */
  hint: string;
}

/**
 * Every error code, with its default exit code and a generic hint. Thrown errors, failed targets
 * of a fan-out (`TargetErrorCode`) and rows never run (`NOT_RUN`, `GONE`) all draw from it.
 */
export const ERROR_CODES = {
  USAGE: { exit: EXIT.usage, hint: 'see tenantctl <command> --help' },
  CONFIG_INVALID: { exit: EXIT.usage, hint: 'fix the config file (tenantctl config show prints what was read)' },
  CONFIG_NOT_FOUND: { exit: EXIT.usage, hint: 'pass --config FILE or set TENANTCTL_CONFIG' },
  CONFIG_YAML: { exit: EXIT.usage, hint: 'fix the YAML syntax at the position named' },
  CONFIG_ENV: { exit: EXIT.usage, hint: 'set the environment variable the config refers to' },
  BAD_SLUG: { exit: EXIT.usage, hint: 'use lowercase letters, digits and hyphens' },
  BAD_INPUT: { exit: EXIT.usage, hint: 'fix the value named and run the command again' },
  UNKNOWN_REGION: { exit: EXIT.usage, hint: 'use a region of the config (tenantctl config show)' },
  UNKNOWN_SHARD: { exit: EXIT.usage, hint: 'use a shard of the config (tenantctl config show)' },
  UNKNOWN_TIER: { exit: EXIT.usage, hint: 'use a tier of the config (tenantctl config show)' },
  UNKNOWN_MODEL: { exit: EXIT.usage, hint: 'use pool, schema or database' },
  RESIDENCY: { exit: EXIT.usage, hint: 'pick a region with the residency asked for' },
  TENANT_EXISTS: { exit: EXIT.usage, hint: 'pick another slug' },
  PLACEMENT_EXISTS: { exit: EXIT.usage, hint: 'inspect and drop the leftovers yourself, or pick another slug' },
  TENANT_NOT_FOUND: { exit: EXIT.usage, hint: 'see tenantctl tenant list' },
  TENANT_STATE: { exit: EXIT.usage, hint: 'see tenantctl tenant show <slug>' },
  NEEDS_YES: { exit: EXIT.usage, hint: 'pass --yes to confirm' },
  /** `tenant credentials` for a tenant whose model gives it no role (the pool's serving role is shared). */
  NO_OWN_ROLE: { exit: EXIT.usage, hint: "the serving role's password is servingRole.password in the config" },
  /** `tenant credentials` without --rotate on a role that has a password tenantctl cannot show again. */
  CREDENTIALS_EXIST: { exit: EXIT.usage, hint: 'pass --rotate to set a new password' },
  UNREACHABLE: { exit: EXIT.usage, hint: 'check the shard is running and its url in the config' },
  LOCKED: { exit: EXIT.locked, hint: 'wait for it to finish, or pass --wait' },
  INTERRUPTED: { exit: EXIT.interrupted, hint: 'run the command again to finish' },
  TIMEOUT: { exit: EXIT.failed, hint: 'raise migrations.statementTimeout or migrations.lockTimeout, or run at a quieter time' },
  MIGRATION_FILES: { exit: EXIT.usage, hint: 'fix the files in the migrations folder' },
  MIGRATION_FAILED: { exit: EXIT.failed, hint: 'fix the migration in a new file, then run migrate up again' },
  DRIFT: { exit: EXIT.usage, hint: 'restore the edited files to what was applied; put changes in a new migration' },
  DEV_PORT_TAKEN: { exit: EXIT.usage, hint: 'set TENANTCTL_DEV_PORT_US1/US2/EU1 to free ports' },
  DEV_FAILED: { exit: EXIT.failed, hint: 'see the cluster log named in the message' },
  PROVISION_FAILED: { exit: EXIT.failed, hint: 'run the same command again to retry' },
  RLS_UNSAFE: { exit: EXIT.failed, hint: 'see tenantctl audit for the pool target' },
  UNDECLARED_TABLE: {
    exit: EXIT.usage,
    hint: 'add the tenant key to the table in a migration, or declare it in tenantKey.shared (then it is not copied)',
  },
  TABLE_OUTSIDE_SCHEMA: {
    exit: EXIT.usage,
    hint: "keep a tenant's tables in its schema (a migration's unqualified names go there), then run the command again",
  },
  KEY_IN_USE: { exit: EXIT.usage, hint: 'pick another --key, or remove the rows first' },
  LARGE_OBJECTS: {
    exit: EXIT.usage,
    hint: 'move their contents into a bytea column of a tenant table (or object storage) in a migration, remove the large objects (lo_unlink), then run the command again',
  },
  DELETE_INCOMPLETE: { exit: EXIT.failed, hint: 'check the row-level security of the tables named, then run the delete again' },
  BAD_ARCHIVE: { exit: EXIT.usage, hint: 'use another backup (tenantctl backup list), or tenantctl backup verify to see what is wrong' },
  BACKUP_NOT_FOUND: { exit: EXIT.usage, hint: 'see tenantctl backup list for the ids' },
  BACKUP_KEY: { exit: EXIT.usage, hint: 'set TENANTCTL_BACKUP_KEY to the master key the archive was written with' },
  BACKUP_FAILED: { exit: EXIT.failed, hint: 'fix the cause it names, then run backup create again' },
  /** Object storage refused us: no such bucket, a wrong, expired or missing AWS credential, access denied. */
  BACKUP_STORAGE: {
    exit: EXIT.usage,
    hint: 'check regions.<region>.backup.s3 in the config and the AWS credentials in the environment (AWS_ACCESS_KEY_ID, AWS_PROFILE, the instance role)',
  },
  /** The catalog has a catalog migration this tenantctl does not know: a newer tenantctl migrated it. */
  CATALOG_NEWER: {
    exit: EXIT.usage,
    hint: 'run the tenantctl that migrated the catalog, or a newer one (npm install in its folder); an older one does not know its tables',
  },
  /** `catalog restore` into a catalog that has rows: a backup is never merged. */
  CATALOG_NOT_EMPTY: { exit: EXIT.usage, hint: 'point catalog.database at a new database, then run catalog restore again' },
  /** Object storage did not answer, or an upload or download was cut off. */
  BACKUP_STORAGE_DOWN: { exit: EXIT.failed, hint: 'check the endpoint is reachable, then run the command again' },
  /** A pool restore of a backup the pool's version cannot take (a restore never migrates a shared pool). */
  POOL_VERSION: { exit: EXIT.usage, hint: "bring the pool to the backup's version with tenantctl migrate up, then restore again" },
  /** What a killed operation of the tenant left could not be removed: the command did nothing else. */
  SWEEP_INCOMPLETE: { exit: EXIT.failed, hint: 'fix the cause it names, then run the command again: it tries the removal first' },
  RESTORE_FAILED: { exit: EXIT.failed, hint: 'nothing was switched; fix the cause it names, then run restore again' },
  PG_DUMP: { exit: EXIT.failed, hint: 'install a pg_dump at least as new as the shard (PostgreSQL client tools)' },
  MOVE_FAILED: { exit: EXIT.failed, hint: 'the catalog still points where the data is whole; run move again to resume, or move rollback' },
  MOVE_VERIFY: { exit: EXIT.failed, hint: 'nothing was switched; the copy was removed; run move again' },
  /** `move complete` found the source written after the switch: removing it would drop those writes. */
  MOVE_SOURCE_CHANGED: {
    exit: EXIT.failed,
    hint: 'nothing was removed; tenantctl move rollback <slug> keeps the source, or carry the writes over and pass --discard-source-writes',
  },
  /** `move --online` without what logical replication needs (wal_level, roles, replica identity). */
  ONLINE_UNAVAILABLE: {
    exit: EXIT.usage,
    hint: "give the shards what the message names (tenantctl doctor shows it per shard), or run the move without --online (an offline move blocks the tenant's writes while it copies)",
  },
  /** `move --online` to another model: logical replication maps tables by their qualified names. */
  ONLINE_CROSS_MODEL: { exit: EXIT.usage, hint: 'run the move without --online (offline moves change models)' },
  /** A fan-out row that never ran (stopped, interrupted, its shard was down first). */
  NOT_RUN: { exit: EXIT.failed, hint: 'run the command again (or --resume the run)' },
  /** A tenant deleted while a fan-out was under way: nothing done, nothing recreated. */
  GONE: { exit: EXIT.failed, hint: 'nothing to do: the tenant no longer exists' },
  /** A shard or the catalog stopped answering mid-command (src/connection-loss.ts): the message names it. */
  SHARD_LOST: {
    exit: EXIT.failed,
    hint: 'start the shard named again (tenantctl dev up for embedded shards), then run the same command again: it finishes or undoes what was left',
  },
  /** A tier limit PostgreSQL refuses to set on a tenant's role (e.g. a superuser-only setting). */
  LIMIT_REFUSED: { exit: EXIT.usage, hint: "grant tenantctl's shard role what the message names, or remove the limit from the tier" },
  /** `usage --fail-on-quota`: a tenant is over its tier's quota. */
  OVER_QUOTA: { exit: EXIT.failed, hint: 'see tenantctl usage; raise the tier (tenant set-tier) or the quota' },
  /** Point-in-time restore (src/pitr/): no repository, no archiving or stanza, pgBackRest missing. */
  PITR_NOT_CONFIGURED: { exit: EXIT.usage, hint: 'tenantctl pitr setup --shard <shard> prints what the shard needs' },
  PITR_UNAVAILABLE: { exit: EXIT.usage, hint: "install Debian's pgbackrest package: apt-get install -y pgbackrest" },
  /** A time outside the shard's recoverable window (oldest base backup to the last archived WAL). */
  PITR_WINDOW: { exit: EXIT.usage, hint: 'pick a time inside the window tenantctl pitr status prints' },
  PITR_DISK: { exit: EXIT.usage, hint: 'free the space named, or set regions.<region>.pitr.scratch to a larger disk' },
  PITR_FAILED: { exit: EXIT.failed, hint: 'nothing was changed on the live fleet; fix the cause it names and run the command again' },
  SHARD_BUDGET_DEADLOCK: { exit: EXIT.usage, hint: "raise the shard's maxConnections in the config" },
  INTERNAL: { exit: EXIT.failed, hint: 'run again with --verbose for details, and report it with the command you ran' },
} as const satisfies Record<string, CodeInfo>;

export type ErrorCode = keyof typeof ERROR_CODES;

/** The codes a migration target's outcome may carry (src/migrate/ adopts this one). */
export type TargetErrorCode = Extract<
  ErrorCode,
  'MIGRATION_FAILED' | 'RLS_UNSAFE' | 'DRIFT' | 'LOCKED' | 'TIMEOUT' | 'UNREACHABLE' | 'INTERRUPTED'
>;

/** The default exit code of an error code. */
export function exitFor(code: ErrorCode): ExitCode {
  return ERROR_CODES[code].exit;
}

/** The generic hint of an error code. */
export function hintFor(code: ErrorCode): string {
  return ERROR_CODES[code].hint;
}

export class TenantctlError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    /** What the operator should do about it; printed after the message. */
    readonly hint?: string,
    readonly exitCode: number = exitFor(code),
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
  if (err instanceof Error) {
    // PostgreSQL's words for a lock wait that ran out say nothing of whose lock or what to do.
    if ((err as { code?: string }).code === '55P03' && /lock timeout/.test(err.message))
      return `${err.message}${namesHolder(err.message) ? LOCK_TIMEOUT_NAMED : LOCK_TIMEOUT_WORDS}`;
    return err.message;
  }
  return String(err);
}

/** Whether a lock wait's message already names the session that held it (`… pid 123 …`). */
export function namesHolder(message: string): boolean {
  return /\bpid \d+/.test(message);
}

/** The same, when the message names the sessions (fleet/lock-timeout-holders.ts). */
const LOCK_TIMEOUT_NAMED = ': another session held a lock on what tenantctl needed past its wait; run the command again once it has ended';

/** What a bounded lock wait (a session's lock_timeout, fleet/shard-connections.ts) means for the operator. */
const LOCK_TIMEOUT_WORDS =
  ": another session held a lock on what tenantctl needed past its wait (a tenant's or an application's open transaction on its tables?); pg_locks and pg_stat_activity name it; run the command again once it has ended";
