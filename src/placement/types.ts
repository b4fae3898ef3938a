import type { Config } from '../config/types.js';
import type { Fleet } from '../fleet/fleet.js';
import type { ShardClient } from '../fleet/shard-connections.js';
import type { KeyRows, PoolScope } from './pool/rows.js';
import type { CatalogPlacement } from './placement.js';
import type { NewPlacement } from './existing.js';
import type { MigrationHooks } from './migration-hooks.js';

/** The parts of a tenant's catalog row a placement needs (src/placement/placement.ts). */
export type PlacedTenant = CatalogPlacement;

/**
 * The three isolation models behind one interface. Every step is idempotent, so a provisioning
 * killed half-way is finished by running it again.
 */
export interface PlacementDriver {
  /** Create what must exist before migrations run: database, schema, roles. */
  prepare(fleet: Fleet, config: Config, t: PlacedTenant): Promise<void>;
  /** After migrations: grants on the tables they made. */
  finish(fleet: Fleet, config: Config, t: PlacedTenant): Promise<void>;
  /** Remove the tenant's placement (exclusive models) or its rows (pool). */
  remove(fleet: Fleet, config: Config, t: PlacedTenant): Promise<void>;
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
   * Shared placements only: rows already there with the tenant's key (a new tenant with it
   * would see them). Exclusive placements start empty.
   */
  keyRows?(fleet: Fleet, config: Config, t: PoolScope): Promise<KeyRows[]>;
  /**
   * prepare, then `steps.inside` (the migrations), then finish, with everything PostgreSQL allows
   * in ONE transaction on one connection to the tenant's database: a failure or a crash inside
   * it leaves nothing of that part behind. Exclusive models only (a pool tenant gets no objects
   * of its own). Still idempotent, so a resumed provisioning may call it again.
   */
  createInOneTransaction?(fleet: Fleet, config: Config, t: PlacedTenant, steps: OneTransactionSteps): Promise<void>;
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
}

export interface OneTransactionSteps {
  /** On the connection, before its transaction begins (e.g. the tracking table, created once per database). */
  before(c: ShardClient): Promise<void>;
  /** Inside the transaction, after the placement's schema and role exist, before the grants on tables. */
  inside(c: ShardClient): Promise<void>;
}
