import type { CatalogDb } from '../catalog/open.js';
import type { Config } from '../config/types.js';
import type { Fleet } from '../fleet/fleet.js';
import type { MigrationFile } from '../migrate/files.js';

import type { TableCheck } from './copy.js';
import type { ForeignKeyPath } from '../copy/pool-load-path.js';
import type { NamesAfter } from './names.js';
import type { OnlineVia } from './online-preflight.js';
import type { MoveEnd, MoveRequest } from './plan.js';

// The move's shared vocabulary: run.ts, the online path and the records import it from here, not from each other.

/**
 * The source's fence from the switch until `move complete` removes the source (or `move rollback`
 * lifts it): the application's old URL may read but never write where nobody will read again.
 * Recorded in the move's operations row before it is placed. `key`: a row in the pool's fence
 * table (src/placement/pool/switch-fence.ts); `trigger`: statement triggers on an exclusive
 * placement's tables (src/placement/table-switch-fence.ts). Both persist without tenantctl.
 */
export interface SwitchFenceRecord {
  kind: 'key' | 'trigger';
  shard: string;
  database: string;
  schema: string;
  key: string;
  tenant: string;
  /** Where the tenant lives now, in the words the application's error carries. */
  livesAt: string;
  at?: string;
  liftedAt?: string;
}

export interface MoveDeps {
  config: Config;
  db: CatalogDb;
  fleet: Fleet;
  migrations: MigrationFile[];
  command: string;
  wait?: boolean;
  /** A phase starts or ends (the report's live view). */
  onPhase?: (e: PhaseEvent) => void;
  onProgress?: (p: { table: string; rows: number; bytes: number; totalRows?: number }) => void;
  /** Ctrl-C: stop cleanly before the switch (interrupt.ts). */
  signal?: AbortSignal;
  /** Throws when the tenant's lock went with a lost catalog session (the engine's run.assertLocked). */
  assertLocked?: () => void;
}

export type PhaseName = 'preflight' | 'build' | 'fence' | 'copy' | 'rebuild' | 'catch-up' | 'verify' | 'switch' | 'unfence';

/**
 * An offline move builds its target before the fence: the write block is copy, rebuild, verify
 * and switch (build-target.ts). `rebuild`: what the load deferred, built once after it (a new
 * placement's indexes, keys and foreign keys; a pool's foreign keys checked once), so every
 * millisecond of the move is in a phase.
 */
export const PHASES: PhaseName[] = ['preflight', 'build', 'fence', 'copy', 'rebuild', 'verify', 'switch', 'unfence'];

/** An online move copies and streams first, then fences for the last catch-up (online-run.ts). */
export const ONLINE_PHASES: PhaseName[] = ['preflight', 'copy', 'fence', 'catch-up', 'verify', 'switch', 'unfence'];

export interface PhaseEvent {
  phase: PhaseName;
  state: 'start' | 'done' | 'failed';
  ms?: number;
  detail?: string;
}

export interface MoveOptions extends MoveRequest {
  dryRun?: boolean;
  online?: boolean;
  /**
   * Into a pool: drop the target tables' foreign keys for the load and check them once after it
   * (as a new schema or database target always does), at the price of an ACCESS EXCLUSIVE lock
   * on the pool's tenant tables, so the target pool's other tenants wait for the load.
   */
  fastLoad?: boolean;
  /**
   * Into a pool: how long the load (and a failed move's cleanup) waits for a lock another session
   * holds on the pool's shared tables, in ms (default LOAD_LOCK_WAIT_MS, 30 s).
   */
  lockWaitMs?: number;
}

export interface MoveResult {
  tenant: string;
  /** switched: the catalog points at the target (source kept until `move complete`). */
  status: 'switched' | 'failed' | 'planned';
  /** Writes blocked only for the last catch-up (online-start.ts). */
  online?: boolean;
  /** Logical replication, or trigger capture where the role may not create subscriptions. */
  onlineVia?: OnlineVia;
  /** A dry run's trigger path: why logical replication is not possible. */
  notReplication?: string;
  move?: number;
  from: MoveEnd;
  to: MoveEnd;
  version?: string | null;
  phases: { phase: PhaseName; ms: number }[];
  tables?: TableCheck[];
  rows?: number;
  bytes?: number;
  /** Writes were blocked (fence on → lifted) for this long of `durationMs`. */
  writeBlockedMs?: number;
  /**
   * An online move by logical replication: what was compared while writes were blocked (only the
   * rows changed since the proof before the fence, online-proof.ts).
   */
  verifiedUnderFence?: VerifiedUnderFence;
  /** How an offline move's load checked foreign keys, and why (src/copy/pool-load-path.ts). */
  foreignKeyCheck?: ForeignKeyPath;
  /** How an offline move built its target before the fence (build-target.ts). */
  targetBuild?: TargetBuild;
  /** Migrations applied to a pool target first. */
  targetMigrated?: string[];
  /** Declared shared tables, not copied (the target has its own). */
  sharedNotCopied?: string[];
  /** Switched: what the application connects with now (the same names when the model was kept). */
  names?: NamesAfter;
  /** A killed earlier attempt that was cleaned up before this one. */
  resumed?: { move?: number; cleaned: string[] };
  durationMs: number;
  /** Succeeded, but something was left to clean up later (an online move's replication objects). */
  warning?: string;
  error?: { code: string; message: string; hint?: string };
}

/** The tables, and their rows, an online move compared under its fence. */
export interface VerifiedUnderFence {
  tables: string[];
  rows: number;
}

/** How the target was built, for the report: nothing to build (a pool), or the placement made at the source's version. */
export type TargetBuild = 'shared pool' | 'one transaction' | 'step by step';
