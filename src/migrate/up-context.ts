import type { CatalogDb } from '../catalog/open.js';
import type { TenantSelector } from '../catalog/tenants.js';
import type { Config } from '../config/types.js';
import type { ResultDocument, TenantResult } from '../fanout/result.js';
import type { OnError } from '../fanout/run.js';
import type { Fleet } from '../fleet/fleet.js';
import type { CatalogWriter } from './catalog-writer.js';
import type { TargetBatcher } from './target-batcher.js';
import type { MigrationFile } from './files.js';
import type { MigratePlan, Partition, PlannedTarget } from './plan.js';
import type { RunInfo, RunLock } from './run-record.js';
import type { ShardHealth } from './state.js';
import type { MigrateEvent, MigrateTargetOptions } from './target-types.js';
import type { StateRead } from './up-states.js';
import type { MigrateRow } from './up-rows.js';

/** The inputs, the document and the shared state of one `migrate up` run. */

export interface MigrateUpDeps {
  config: Config;
  db: CatalogDb;
  fleet: Fleet;
  migrations: MigrationFile[];
  command?: string;
}

export interface MigrateUpOptions {
  selector?: TenantSelector;
  partition?: Partition;
  /**
   * The CI matrix's key: with --partition, the first job records its cost-balanced split under it
   * and the others read it (partition-agree.ts).
   */
  partitionKey?: string;
  /** Targets migrated at once across the fleet (each shard is also held to its budget). */
  concurrency: number;
  /**
   * At most this many targets at once on a shard that runs on this machine (local-shard.ts). The
   * CLI sets it (2 per core) when no --concurrency was given; absent, only the budgets apply.
   */
  localShardTargets?: number;
  onError?: OnError;
  maxFailures?: number;
  /** Run this many targets first, one at a time; stop if any fails. */
  canary?: number;
  /** Print what would be applied; change nothing (no tracking table, no lock, no run record). */
  dryRun?: boolean;
  /** Finish this run: its targets not yet succeeded. */
  resume?: number;
  /** Retry this run's failed targets (a new run). */
  onlyFailed?: number;
  /** Wait for another run's lock instead of exit 3. */
  wait?: boolean;
  /** Aborting stops scheduling; running targets finish their current migration. */
  signal?: AbortSignal;
  /**
   * Targets sent in one message at most (each in its own transaction; target-batcher.ts). Absent:
   * BATCH_SIZE when BATCH_FROM or more targets fit one message, else 1 (a message per target).
   */
  batchTargets?: number;
  /**
   * Targets of a batched run under their tenant's lock at once, at most (default
   * MAX_TARGETS_IN_FLIGHT, up-run.ts); never below `concurrency`. Tests lower it.
   */
  maxTargetsInFlight?: number;
  /** Per-target overrides (tests shorten waits). */
  targetOptions?: Pick<MigrateTargetOptions, 'lockWaitMs' | 'retryBaseMs' | 'targetTimeoutMs'>;
  hooks?: MigrateUpHooks;
}

export interface MigrateUpHooks {
  /** --wait: another run holds the lock. */
  onWaiting?(holder: string): void;
  /** The run is recorded: its id and how many targets have work. */
  onRun?(info: { runId: number; resumed: boolean; targets: number; work: number; upToDate: number; skipped: number }): void;
  onTargetStart?(t: PlannedTarget): void;
  /** A target with work finished (or was not run): one result per target, for progress lines. */
  onTargetResult?(t: PlannedTarget, r: TenantResult): void;
  onEvent?(e: MigrateEvent): void;
}

export interface MigrateUpDocument extends ResultDocument<MigrateRow> {
  /** The run record's id (null for a dry run). */
  run: number | null;
  dryRun: boolean;
  /** The last migration file. */
  head: string | null;
  /**
   * Targets by outcome. `failed` includes `unreachable` (targets on shards that did not answer);
   * `gone` are tenants deleted (or no longer migratable) by the time their target was taken.
   */
  targets: TargetCounts;
  /** The failure policy stopped scheduling: why, its limit, and the failures in the end (running targets may add to them). */
  stopped?: { reason: string; limit: number; failuresAtStop: number; failures: number };
  interrupted: boolean;
  resumed?: number;
  retryOf?: number;
  warnings?: string[];
}

export interface TargetCounts {
  total: number;
  upToDate: number;
  migrated: number;
  failed: number;
  notRun: number;
  unreachable: number;
  gone: number;
}

/** A planned run, ready to execute under the fleet run lock. */
export interface PlannedRun {
  deps: MigrateUpDeps;
  opts: MigrateUpOptions;
  plan: MigratePlan;
  lock: RunLock;
  /** --resume / --only-failed: the earlier run. */
  previous?: RunInfo;
  /** Targets of the earlier run that are no longer migratable. */
  gone: { id: string; tenants: string[] }[];
  started: number;
  head: string | null;
  /** The targets' state, being read on their shards since the run lock was taken. */
  stateRead: StateRead;
}

/** What the steps of a run share while it executes. */
export interface RunState extends PlannedRun {
  run: RunInfo;
  command: string;
  resuming: boolean;
  counts: TargetCounts;
  rows: MigrateRow[];
  writer: CatalogWriter;
  health: ShardHealth;
  /** Several targets per message (large runs); absent: each target on its own connection. */
  batcher?: TargetBatcher;
  stopped?: MigrateUpDocument['stopped'];
}

export function emptyCounts(total: number): TargetCounts {
  return { total, upToDate: 0, migrated: 0, failed: 0, notRun: 0, unreachable: 0, gone: 0 };
}
