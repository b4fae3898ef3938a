import type { Config, Model } from '../config/types.js';
import type { Fleet } from '../fleet/fleet.js';
import type { ShardClient } from '../fleet/shard-connections.js';
import type { KeyRows, PoolScope } from './pool/rows.js';
import type { CatalogPlacement } from './placement.js';
import type { NewPlacement } from './existing.js';
import type { MigrationHooks } from './migration-hooks.js';
import type { ShardDatabases } from './naming.js';
import type { ScopedTable } from './pool/rls.js';
import type { DataUsage, MeasureOptions } from './usage-types.js';
import type { MoveTarget } from './move-target.js';

/** The parts of a tenant's catalog row a placement needs (src/placement/placement.ts). */
export type PlacedTenant = CatalogPlacement;

/**
 * A driver's kind: `shared-tables` (the tenant is a key filter on tables other tenants share:
 * pool) or `own-placement` (a schema or database that is the tenant's alone). Each kind has its
 * own required methods (SharedTablesDriver, OwnPlacementDriver).
 */
export type DriverKind = 'shared-tables' | 'own-placement';

/**
 * How the tenant's writes are blocked. `write`: a move's or restore's fence, `advisory`
 * (restrictive policies waiting on a session lock, pool/fence.ts) or `trigger` (statement
 * triggers, table-fence.ts); `switch`: the source's fence after a move's switch, `key` (a row in
 * the pool's fence table, pool/switch-fence.ts) or `trigger` (table-switch-fence.ts). Recorded in
 * operations rows by these names.
 */
export interface FenceKinds {
  write: 'advisory' | 'trigger';
  switch: 'key' | 'trigger';
}

/** A new tenant's names of one model (src/placement/naming.ts). */
export interface PlacementNames {
  database: string;
  schema: string;
}

/** The caller's part of `createAtVersion`: the migrations (and whatever rides with them). */
export interface CreateAtVersionSteps {
  /** Every migration can run in one transaction (a model of its own then makes everything in one). */
  oneTransaction: boolean;
  /** On the connection, before its transaction begins (the tracking table, once per database). */
  before(c: ShardClient): Promise<void>;
  /** After the placement exists, before it is migrated. */
  afterPrepare?(): Promise<void>;
  /** Bring the placement to the version (and load, when the caller does); `withinTransaction`: on the caller's open transaction. */
  migrate(c: ShardClient, withinTransaction: boolean): Promise<void>;
}

/**
 * What every model's driver does (each in src/placement/<model>/driver.ts, registered in
 * drivers.ts). Every step is idempotent, so a provisioning killed half-way is finished by
 * running it again.
 */
interface DriverBase {
  readonly model: Model;
  readonly kind: DriverKind;
  /** How its writes are fenced (move, restore --replace). */
  readonly fence: FenceKinds;
  /** Where a new tenant of this model goes (names from the slug). */
  names(slug: string, dbs: ShardDatabases): PlacementNames;
  /**
   * The SQL condition that selects the tenant's rows of one of its tables, or null when the
   * placement is all the tenant's. `key`: a literal (quoted here, cast to the key type) or a
   * parameter such as `{ param: '$1' }` (cast the same way; no key type: typed as the column). The one tenant-key filter.
   */
  keyFilter(column: string, keyType: string, key: string | { param: string }, rel?: string): string | null;
  /** The tenant-scoped tables of `schema`, parents before children (src/placement/scoped-tables.ts: the one rule). */
  scopedTables(
    client: Pick<ShardClient, 'query'>,
    schema: string,
    config: Pick<Config, 'tenantKey' | 'rls' | 'servingRole'>,
  ): Promise<ScopedTable[]>;
  /** Create the placement at a migration version: in one transaction where the model and the migrations allow, else step by step. */
  createAtVersion(fleet: Fleet, config: Config, t: PlacedTenant, steps: CreateAtVersionSteps): Promise<{ oneTransaction: boolean }>;
  /**
   * Refuse a copy that row-level security would filter (`read`) or that it would refuse
   * (`load`): shared tables only; a placement of its own is read and loaded unfiltered.
   */
  assertCopyAllowed(
    c: Pick<ShardClient, 'query'>,
    schema: string,
    config: Pick<Config, 'tenantKey' | 'rls' | 'servingRole'>,
    mode: 'read' | 'load',
  ): Promise<void>;
  /** Make the placement's write fences takeable (pool: its fence policies, DDL on the shared tables done before any fence). */
  prepareFence(fleet: Fleet, config: Config, at: { shard: string; database: string; schema: string }, lockTimeoutMs: number): Promise<void>;
  /**
   * `usage`: the group a tenant is measured in. Tenants of one group (on one shard) are measured
   * together by one `usage` call on one connection to their database (pool: every tenant of a
   * shared schema, in one pass over its tables; own placements: every schema of a database).
   */
  usageGroup(t: PlacedTenant): string;
  /** Measure one group's tenants, on a connection to their database: usage per slug (nothing found: zero). */
  usage(
    c: Pick<ShardClient, 'query'>,
    config: Pick<Config, 'tenantKey' | 'rls' | 'servingRole'>,
    tenants: PlacedTenant[],
    opts: MeasureOptions,
  ): Promise<Map<string, DataUsage>>;
  /** Create what must exist before migrations run: database, schema, roles. */
  prepare(fleet: Fleet, config: Config, t: PlacedTenant): Promise<void>;
  /** After migrations: grants on the tables they made. */
  finish(fleet: Fleet, config: Config, t: PlacedTenant): Promise<void>;
  /**
   * Remove the tenant's placement (exclusive models) or its rows (pool). `lockWaitMs`: how long a
   * pool's deletes wait for a lock another session holds on the shared tables (default
   * LOAD_LOCK_WAIT_MS); past it the remove stops, names the holder and deletes nothing.
   */
  remove(fleet: Fleet, config: Config, t: PlacedTenant, opts?: { lockWaitMs?: number; deleted?: boolean }): Promise<void>;
  /**
   * `remove`, but the tenant's own role stays: another placement of the tenant on the same
   * cluster still uses it (roles are cluster-wide), e.g. the other end of a schema ↔ database
   * move, or the fresh placement a restore --replace switched to. `roleStaysInDatabase`: that
   * other placement is in this same database, so the role keeps its CONNECT on it. Models
   * without a role of their own remove as `remove` does. Idempotent: a missing placement is fine.
   */
  removeKeepingRole(fleet: Fleet, config: Config, t: PlacedTenant, opts: { roleStaysInDatabase: boolean }): Promise<void>;
  /**
   * After a failed `createInOneTransaction`: remove what it made outside its transaction (a
   * database model's database, made before it since CREATE DATABASE cannot run in one, and the
   * role with it unless `keepRole`: the role is a live tenant's). Models that make everything
   * inside the transaction have nothing to undo.
   */
  undoCreate(fleet: Fleet, config: Config, t: PlacedTenant, opts: { keepRole: boolean }): Promise<void>;
  /**
   * Let the tenant log in, or not (suspend and resume; later the fence of a move). Models without
   * a role of their own do nothing: a pool tenant's access is the serving role's, shared.
   */
  setLogin(fleet: Fleet, t: PlacedTenant, login: boolean): Promise<void>;
  /**
   * Suspend the tenant (its application can neither read nor write) or let it back in.
   * Idempotent, so a re-run converges. Pool: its key's rows refused to the serving role
   * (pool-suspend.ts). Own role: LOGIN off and its open sessions ended, or LOGIN on. Returns the
   * sessions ended (null: the model has no sessions of its own to end).
   */
  setSuspended(fleet: Fleet, config: Config, t: PlacedTenant, suspended: boolean): Promise<number | null>;
  /**
   * What of a new tenant's placement already exists on the shard (schema, database, role), named
   * for the operator; tenant create refuses to adopt any of it. Shared placements: nothing.
   */
  existing(fleet: Fleet, t: NewPlacement): Promise<string[]>;
  /** What the migration engine does differently for this model (src/placement/migration-hooks.ts). */
  readonly migration: MigrationHooks;
  /** How a move's target takes the tenant: a placement the move makes, or shared tables (move-target.ts). */
  readonly moveTarget: MoveTarget;
}

/** A model whose tenants share tables, told apart by the tenant key (pool). */
export interface SharedTablesDriver extends DriverBase {
  readonly kind: 'shared-tables';
  /** Rows already there with the tenant's key (a new tenant with it would see them). */
  keyRows(fleet: Fleet, config: Config, t: PoolScope): Promise<KeyRows[]>;
  /** The group's tenants' usage out of a pass over every key of their shared schema (usage's early pass). Pure. */
  usageOfPass(tenants: PlacedTenant[], byKey: Map<string, DataUsage>): Map<string, DataUsage>;
  createInOneTransaction?: undefined;
}

/** A model that gives each tenant a placement of its own (schema, database). */
export interface OwnPlacementDriver extends DriverBase {
  readonly kind: 'own-placement';
  /**
   * prepare, then `steps.inside` (the migrations), then finish, with everything PostgreSQL allows
   * in ONE transaction on one connection to the tenant's database: a failure or a crash inside
   * it leaves nothing of that part behind. Still idempotent, so a resumed provisioning may call it again.
   */
  createInOneTransaction(fleet: Fleet, config: Config, t: PlacedTenant, steps: OneTransactionSteps): Promise<void>;
  keyRows?: undefined;
  usageOfPass?: undefined;
}

export type PlacementDriver = SharedTablesDriver | OwnPlacementDriver;

export interface OneTransactionSteps {
  /** On the connection, before its transaction begins (e.g. the tracking table, created once per database). */
  before(c: ShardClient): Promise<void>;
  /** Inside the transaction, after the placement's schema and role exist, before the grants on tables. */
  inside(c: ShardClient): Promise<void>;
}
