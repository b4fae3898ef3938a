import type { ColumnType, Generated, Insertable, Selectable, Updateable } from 'kysely';
import type { Model } from '../config/types.js';

/**
 * Typed catalog tables. The catalog is the one source of truth for where every tenant lives.
 */
/** `moving`: a move is copying it (src/move/); the catalog still points at its source, where it is whole. */
export type TenantStatus = 'provisioning' | 'active' | 'suspended' | 'failed' | 'deleting' | 'moving';

export interface TenantsTable {
  id: Generated<number>;
  slug: string;
  key: string;
  name: string;
  tier: string;
  model: Model;
  region: string;
  shard: string;
  database_name: string;
  schema_name: string;
  residency: string | null;
  status: TenantStatus;
  /** What went wrong, for a failed tenant; null otherwise. */
  status_detail: string | null;
  /** The last migration applied at its placement, as far as the catalog knows. */
  schema_version: string | null;
  created_at: ColumnType<Date, never, never>;
  updated_at: ColumnType<Date, never, Date>;
}

export interface OperationsTable {
  id: Generated<number>;
  kind: string;
  status: string;
  tenant_slug: string | null;
  holder: string;
  args: ColumnType<unknown, string, string>;
  progress: ColumnType<unknown, string | null, string | null>;
  started_at: ColumnType<Date, never, never>;
  heartbeat_at: ColumnType<Date, never, Date>;
  finished_at: ColumnType<Date | null, never, Date | null>;
}

export interface EventsTable {
  id: Generated<number>;
  at: ColumnType<Date, never, never>;
  actor: string;
  ci_job: string | null;
  command: string;
  tenant_slug: string | null;
  action: string;
  result: string;
  details: ColumnType<unknown, string | null, never>;
}

/** A target's state within one `migrate up` run (operations row of kind 'migrate'). */
export type MigrateTargetStatus = 'pending' | 'succeeded' | 'failed' | 'not_run';

export interface MigrateTargetsTable {
  run_id: number;
  /** `us1/tenant_schemas/t_acme` */
  target: string;
  /** Order in the run's plan; --resume keeps it. */
  position: number;
  model: Model;
  shard: string;
  database_name: string;
  schema_name: string;
  /** Slugs of the tenants the target served in this run (many for a pool target). */
  tenants: string[];
  status: MigrateTargetStatus;
  /** Migrations this run applied there. */
  applied: ColumnType<string[], string[] | undefined, string[]>;
  /** `{ code, message, migration, pgCode, hint }` for a failed target; the reason for not_run. */
  error: ColumnType<unknown, string | null, string | null>;
  started_at: Date | null;
  finished_at: Date | null;
  duration_ms: number | null;
}

/** The holder of a tenant's operation lock (the lock is an advisory lock; see src/operations/). */
export interface TenantLocksTable {
  slug: string;
  backend_pid: number;
  actor: string;
  ci_job: string | null;
  pid: number;
  host: string;
  command: string;
  started_at: ColumnType<Date, Date | undefined, Date>;
}

/** A tenant's backup data key, wrapped by the master key; null once forgotten (src/backup/keys.ts). */
export interface BackupKeysTable {
  key_id: string;
  slug: string;
  wrapped: string | null;
  created_at: ColumnType<Date, never, never>;
  destroyed_at: ColumnType<Date | null, never, Date | null>;
}

/** The checksum the fleet ran of each migration file (src/migrate/one-version.ts). */
export interface MigrationChecksumsTable {
  name: string;
  checksum: string;
  recorded_at: ColumnType<Date, never, never>;
}

export interface CatalogDatabase {
  migration_checksums: MigrationChecksumsTable;
  backup_keys: BackupKeysTable;
  tenants: TenantsTable;
  tenant_locks: TenantLocksTable;
  operations: OperationsTable;
  events: EventsTable;
  migrate_targets: MigrateTargetsTable;
  migrate_target_last: MigrateTargetLastTable;
  migrate_partitions: MigratePartitionsTable;
}

/**
 * Each target's newest finished run and the duration of its newest run that applied something,
 * kept by a trigger on migrate_targets (catalog migration 0010): read instead of the history.
 */
export interface MigrateTargetLastTable {
  target: string;
  run_id: ColumnType<string, never, never>;
  status: ColumnType<'succeeded' | 'failed', never, never>;
  error: ColumnType<unknown, never, never>;
  finished_at: ColumnType<Date | null, never, never>;
  cost_run_id: ColumnType<string | null, never, never>;
  cost_ms: ColumnType<number | null, never, never>;
}

/** One target's slice in a recorded CI-matrix split (src/migrate/partition-agree.ts). */
export interface MigratePartitionsTable {
  key: string;
  slice_count: number;
  target: string;
  slice: number;
  /** The selectors of the job that recorded it (catalog migration 0011; null before). */
  selector: string | null;
  created_at: ColumnType<Date, never, never>;
}

export type TenantRow = Selectable<TenantsTable>;
export type NewTenant = Insertable<TenantsTable>;
export type TenantUpdate = Updateable<TenantsTable>;
export type EventRow = Selectable<EventsTable>;
export type MigrateTargetRow = Selectable<MigrateTargetsTable>;
