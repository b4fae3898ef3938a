import type pg from 'pg';
import type { Config, Model } from '../config/types.js';
import type { ShardClient } from '../fleet/shard-connections.js';
import type { MigrationFile } from './files.js';
import type { Drift } from './tracking.js';

/** The shapes of the migration engine: what it is given, what it reports. */

/** Where migrations run: a Placement (src/placement/naming.ts). */
export interface MigrationTarget {
  model: Model;
  shard: string;
  database: string;
  schema: string;
}

export type TargetStatus = 'succeeded' | 'failed' | 'skipped';
export type TargetErrorCode =
  | 'MIGRATION_FAILED'
  | 'RLS_UNSAFE'
  | 'DRIFT'
  | 'LOCKED'
  | 'TIMEOUT'
  | 'UNREACHABLE'
  | 'INTERRUPTED'
  | 'SHARD_LOST'
  | 'TENANT_MOVED';

export interface TargetError {
  code: TargetErrorCode;
  /** Written for the operator; PostgreSQL's own message for a failed statement. */
  message: string;
  /** The migration that failed, e.g. `0004_add_archived_at`. */
  migration?: string;
  /** PostgreSQL's SQLSTATE, e.g. `42703`. */
  pgCode?: string;
  /** What to do about it. */
  hint?: string;
  /** For DRIFT: every changed file. */
  drift?: Drift[];
}

export interface TargetOutcome {
  /** `us1/tenant_schemas/t_acme` */
  target: string;
  status: TargetStatus;
  /** Applied by this run, in order. */
  applied: string[];
  /** Not applied: what a dry run would apply, or what remains after a failure. */
  pending: string[];
  /** Applied at the target with no file here (a newer release ran there). Reported, not fatal. */
  unknown: string[];
  /** Pool targets: the tenant-scoped tables under tenantctl's row-level security. */
  protectedTables?: string[];
  /** The highest migration applied at the target afterwards (null: none), when it was read. */
  version?: string | null;
  /** Why it was skipped. */
  reason?: string;
  /** Things the operator should know that did not fail the target. */
  warnings?: string[];
  durationMs: number;
  /**
   * How many attempts the target took: 1, plus every retry of a migration that failed on a lock
   * (lock timeout, deadlock, serialization failure). Absent when the engine did not run (the
   * target was found up to date before the fan-out).
   */
  attempts?: number;
  error?: TargetError;
}

export type MigrateEvent =
  | { type: 'start'; target: string; migration: string }
  | { type: 'done'; target: string; migration: string; durationMs: number }
  | { type: 'retry'; target: string; migration: string; attempt: number; delayMs: number; pgCode?: string };

export interface MigrateTargetOptions {
  config: Pick<Config, 'migrations' | 'tenantKey' | 'rls' | 'servingRole'>;
  /** Read and compare only: nothing is created, locked or applied. */
  dryRun?: boolean;
  /** Stops before the next migration starts (Ctrl-C, or a fan-out stopping on error). */
  signal?: AbortSignal;
  onEvent?: (e: MigrateEvent) => void;
  /** How long to wait for another session's lock on this target; default migrations.lockTimeout. */
  lockWaitMs?: number;
  /**
   * The caller holds the tenant's own lock (src/operations/tenant-lock.ts, in the catalog, which
   * tenants cannot reach), so no tenantctl session migrates this target meanwhile: the target's
   * lock in its database, where tenants can take it too, is not taken. Only for a target with a
   * tenant of its own (schema, database) and for placements made under that tenant's lock.
   */
  tenantLocked?: boolean;
  /** Overall budget for this target; default migrations.targetTimeout. */
  targetTimeoutMs?: number;
  /** The first gap before a retry (retry-schedule.ts; tests shorten it). */
  retryBaseMs?: number;
  /**
   * What the caller just read at the target (one query per database, before the fan-out). With
   * it, a target whose pending migrations are all transactional SQL is migrated in ONE round
   * trip when nothing changed since; anything unexpected falls back to the step-by-step path.
   */
  known?: KnownState;
  /**
   * The caller has begun a transaction on this client (provisioning a new schema or database
   * tenant: placement, migrations and grants commit or roll back together). Every pending
   * migration runs inside it with its tracking row: no begin/commit, no session lock (a
   * transaction-level one on the same key keeps a concurrent `migrate up` of the target out), no
   * retries (the failed statement aborted the caller's transaction), no rollback (the caller's).
   * The tracking table must exist before the caller's transaction began (ensureTrackingTable:
   * creators in concurrent transactions would collide on the catalog's unique indexes) and the
   * schema must exist. Every pending migration must be transactional (see runsInOneTransaction);
   * one that is not fails the outcome. Not for pool targets.
   */
  withinTransaction?: boolean;
  /**
   * Stop at this migration id instead of the head of the files (a restore or a move brings a new
   * placement to the version of its source). Must name one of the files.
   */
  upTo?: string;
}

export interface KnownState {
  /** Ids applied at the target when it was read (shared between targets: never mutated). */
  applied: readonly string[];
  pending: readonly MigrationFile[];
  unknown: readonly string[];
  /** The database has the tracking table (implied when something is applied). */
  tracked?: boolean;
  /** Its duration_ms measures by default (tracking.ts TIMED_SQL): rows in SQL text leave it out. */
  timed?: boolean;
}

/** A ShardClient, or any pg client (tests, one-off tools). */
export type MigrationClient = pg.ClientBase & Partial<Pick<ShardClient, 'tenantctlDatabase' | 'tenantctlBroken'>>;
