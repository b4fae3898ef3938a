import type { Config, Model } from '../config/types.js';
import type { Fleet } from '../fleet/fleet.js';
import type { ShardClient } from '../fleet/shard-connections.js';
import { ensureSchema, ident, qualified } from '../sql.js';
import { ADMIN_DATABASE, dropDatabase, ensureDatabase } from './databases.js';
import { tenantRoleName, tenantSchemaName } from './naming.js';
import { closeRoleReach, dropRoleEverywhere } from './role-drop.js';
import { endRoleSessions, ensureTenantRole, grantConnect, grantSchemaToRole, setRoleLogin, setRoleSearchPath } from './roles.js';
import { forgetPoolSuspension, setPoolSuspended } from './pool-suspend.js';
import { inTransaction } from '../fleet/fleet.js';
import { ensureServingRole } from './rls.js';
import { scopedTablesInOrder } from './scoped-tables.js';
import { databaseExists, ensureAdminSeesAll, poolKeyRows, rowsWithKey, type KeyRows, type PoolScope } from './pool-rows.js';
import { TenantctlError } from '../errors.js';
import type { CatalogPlacement } from './placement.js';
import { existingDatabasePlacement, existingSchemaPlacement, type NewPlacement } from './existing.js';
import { exclusiveMigration, poolMigration, type MigrationHooks } from './migration-hooks.js';

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

async function currentUser(c: ShardClient): Promise<string> {
  return (await c.query<{ u: string }>('select current_user as u')).rows[0].u;
}

const pool: PlacementDriver = {
  migration: poolMigration,
  async prepare(fleet, config, t) {
    await ensureDatabase(fleet, t.shard, t.database_name);
    await fleet.withClient(t.shard, t.database_name, async (c) => {
      await ensureServingRole(c, config);
      await inTransaction(c, () => grantConnect(c, t.database_name, config.servingRole.name));
      await ensureSchema(c, t.schema_name);
    });
  },
  async finish() {
    // migrateTarget re-applies the row-level-security policies and serving-role grants.
  },
  async remove(fleet, config, t) {
    if (!(await databaseExists(fleet, t.shard, t.database_name))) return;
    await fleet.withTransaction(t.shard, t.database_name, async (c) => {
      // tenantctl's role must see every row, or the delete would match nothing and "succeed".
      await ensureAdminSeesAll(c, t.schema_name, config);
      const tables = await scopedTablesInOrder(c, t.schema_name, config);
      // Children before parents, so foreign keys never block the delete. The key is cast to the
      // column's type (not the column to text) so the tenant-key indexes serve the delete.
      for (const { table, column } of [...tables].reverse()) {
        await c.query(`delete from ${qualified(t.schema_name, table)} where ${ident(column)} = $1::${config.tenantKey.type}`, [t.key]);
      }
      // Proof, in the same transaction: nothing with the key is left anywhere.
      const left = await rowsWithKey(c, tables, t.schema_name, t.key, config);
      if (left.length === 0) await forgetPoolSuspension(c, config, t.key);
      if (left.length > 0) {
        throw new TenantctlError(
          'DELETE_INCOMPLETE',
          `rows with key ${t.key} are still in ${left.map((l) => `${t.schema_name}.${l.table} (${l.rows})`).join(', ')} after the delete; nothing was deleted`,
          'check the row-level security of those tables (tenantctl doctor), then run the delete again',
        );
      }
    });
  },
  removeKeepingRole(fleet, config, t) {
    // No role of its own: the tenant's rows go, as in remove.
    return pool.remove(fleet, config, t);
  },
  async undoCreate() {
    // Nothing is made for a pool tenant outside a transaction.
  },
  async keyRows(fleet, config, t) {
    return poolKeyRows(fleet, config, t);
  },
  async setLogin() {
    // The serving role is shared by every pool tenant: a pool tenant's access is its key.
  },
  async setSuspended(fleet, config, t, suspended) {
    await fleet.withTransaction(t.shard, t.database_name, (c) => setPoolSuspended(c, t.schema_name, config, t.key, suspended));
    return null;
  },
  async existing() {
    return [];
  },
};

const schema: PlacementDriver = {
  migration: exclusiveMigration,
  async prepare(fleet, _config, t) {
    await ensureDatabase(fleet, t.shard, t.database_name);
    const role = tenantRoleName(t.slug);
    await fleet.withTransaction(t.shard, t.database_name, async (c) => {
      await ensureSchema(c, t.schema_name);
      await ensureTenantRole(c, role);
      await setSchemaSearchPath(c, t);
      await c.query(`revoke all on schema ${ident(t.schema_name)} from public`);
      await grantConnect(c, t.database_name, role);
    });
  },
  async finish(fleet, _config, t) {
    await fleet.withTransaction(t.shard, t.database_name, async (c) =>
      grantSchemaToRole(c, t.schema_name, tenantRoleName(t.slug), await currentUser(c)),
    );
  },
  async createInOneTransaction(fleet, _config, t, steps) {
    await ensureDatabase(fleet, t.shard, t.database_name);
    const role = tenantRoleName(t.slug);
    await fleet.withClient(t.shard, t.database_name, async (c) => {
      await steps.before(c);
      await inTransaction(c, async () => {
        await ensureSchema(c, t.schema_name);
        // CREATE ROLE is transactional: a rolled-back provisioning leaves no role either (role
        // names are cluster-wide, but creating different roles at once does not conflict).
        await ensureTenantRole(c, role);
        await setSchemaSearchPath(c, t);
        await c.query(`revoke all on schema ${ident(t.schema_name)} from public`);
        await steps.inside(c);
        await grantSchemaToRole(c, t.schema_name, role, await currentUser(c));
        // Last: grantConnect's advisory lock (which serialises GRANTs on this shared database)
        // is then held only until the commit, not for the whole provisioning, so bulk
        // onboarding is not serialised by it.
        await grantConnect(c, t.database_name, role);
      });
    });
  },
  async remove(fleet, _config, t) {
    // Reach closed first (no LOGIN, no sessions), so a delete that stops half-way leaves no role
    // that can log in; the role then goes from every database it touched (role-drop.ts).
    await closeRoleReach(fleet, t.shard, tenantRoleName(t.slug));
    await dropTenantSchema(fleet, t);
    await dropRoleEverywhere(fleet, t.shard, tenantRoleName(t.slug));
  },
  async removeKeepingRole(fleet, _config, t, opts) {
    await dropTenantSchema(fleet, t, async (c) => {
      if (opts.roleStaysInDatabase) return;
      // The role's CONNECT on this shared database is no longer the tenant's business here. In a
      // savepoint: a failed REVOKE (the role is gone) would otherwise abort the transaction, and
      // its COMMIT would quietly roll back the schema's drop.
      await c.query('savepoint tenantctl_revoke');
      try {
        await c.query(`revoke connect on database ${ident(t.database_name)} from ${ident(tenantRoleName(t.slug))}`);
        await c.query('release savepoint tenantctl_revoke');
      } catch {
        await c.query('rollback to savepoint tenantctl_revoke');
      }
    });
  },
  async undoCreate() {
    // The schema and the role are made inside the transaction; the shared database is not the tenant's.
  },
  setLogin: setTenantLogin,
  setSuspended: suspendTenantRole,
  existing: existingSchemaPlacement,
};

/**
 * The schema tenant's role finds its tables without schema names: search_path = its schema, in
 * the shared database. Only for the tenant's own schema name: a placement built beside the live
 * one under another name (restore --replace) must not re-point the live role before the switch,
 * nor leave it pointing at a schema a failed restore dropped.
 */
async function setSchemaSearchPath(c: ShardClient, t: PlacedTenant): Promise<void> {
  if (t.schema_name === tenantSchemaName(t.slug)) await setRoleSearchPath(c, tenantRoleName(t.slug), t.database_name, t.schema_name);
}

/**
 * Drop a schema tenant's schema and its migration records (then `also`, in the same
 * transaction); false when its database is not there (nothing to drop).
 */
async function dropTenantSchema(fleet: Fleet, t: PlacedTenant, also?: (c: ShardClient) => Promise<void>): Promise<boolean> {
  if (!(await databaseExists(fleet, t.shard, t.database_name))) return false;
  await fleet.withTransaction(t.shard, t.database_name, async (c) => {
    await c.query(`drop schema if exists ${ident(t.schema_name)} cascade`);
    const tracked = await c.query(`select to_regclass('tenantctl.schema_migrations') as t`);
    if (tracked.rows[0].t) await c.query('delete from tenantctl.schema_migrations where target_schema = $1', [t.schema_name]);
    await also?.(c);
  });
  return true;
}

/** A database tenant's database, its role, the role's search_path there and its CONNECT on it. */
async function prepareTenantDatabase(fleet: Fleet, t: PlacedTenant): Promise<void> {
  const role = tenantRoleName(t.slug);
  await ensureDatabase(fleet, t.shard, t.database_name);
  await fleet.withTransaction(t.shard, ADMIN_DATABASE, async (c) => {
    await ensureTenantRole(c, role);
    await setRoleSearchPath(c, role, t.database_name, t.schema_name);
    await grantConnect(c, t.database_name, role);
  });
}

const database: PlacementDriver = {
  migration: exclusiveMigration,
  async prepare(fleet, _config, t) {
    await prepareTenantDatabase(fleet, t);
    await fleet.withClient(t.shard, t.database_name, (c) => ensureSchema(c, t.schema_name));
  },
  async finish(fleet, _config, t) {
    await fleet.withTransaction(t.shard, t.database_name, async (c) =>
      grantSchemaToRole(c, t.schema_name, tenantRoleName(t.slug), await currentUser(c)),
    );
  },
  async createInOneTransaction(fleet, _config, t, steps) {
    // CREATE DATABASE cannot run in a transaction, so the database, the role and its CONNECT (as
    // in prepare, from the maintenance database) come first; a crash after them leaves an empty
    // database and a role, which undo and resume handle. Inside the database, everything else is
    // one transaction.
    await prepareTenantDatabase(fleet, t);
    await fleet.withClient(t.shard, t.database_name, async (c) => {
      await steps.before(c);
      await inTransaction(c, async () => {
        await ensureSchema(c, t.schema_name);
        await steps.inside(c);
        await grantSchemaToRole(c, t.schema_name, tenantRoleName(t.slug), await currentUser(c));
      });
    });
  },
  async remove(fleet, _config, t) {
    // LOGIN off and its sessions ended first (ending them needs the role's privileges, as does
    // the drop's FORCE); then the database, then the role from every database it touched.
    await closeRoleReach(fleet, t.shard, tenantRoleName(t.slug));
    await dropDatabase(fleet, t.shard, t.database_name);
    await dropRoleEverywhere(fleet, t.shard, tenantRoleName(t.slug));
  },
  async removeKeepingRole(fleet, _config, t) {
    await dropDatabase(fleet, t.shard, t.database_name);
  },
  async undoCreate(fleet, config, t, opts) {
    if (opts.keepRole) await dropDatabase(fleet, t.shard, t.database_name);
    else await database.remove(fleet, config, t);
  },
  setLogin: setTenantLogin,
  setSuspended: suspendTenantRole,
  existing: existingDatabasePlacement,
};

/** LOGIN of the tenant's own role on or off, from the maintenance database (roles are cluster-wide). */
async function setTenantLogin(fleet: Fleet, t: PlacedTenant, login: boolean): Promise<void> {
  await fleet.withClient(t.shard, ADMIN_DATABASE, (c) => setRoleLogin(c, tenantRoleName(t.slug), login));
}

/**
 * Suspend: LOGIN off first (no new session), then the open ones ended; resume: LOGIN on. From
 * the maintenance database (roles are cluster-wide).
 */
async function suspendTenantRole(fleet: Fleet, _config: Config, t: PlacedTenant, suspended: boolean): Promise<number | null> {
  return fleet.withClient(t.shard, ADMIN_DATABASE, async (c) => {
    const role = tenantRoleName(t.slug);
    await setRoleLogin(c, role, !suspended);
    return suspended ? endRoleSessions(c, role) : 0;
  });
}

export const drivers: Record<Model, PlacementDriver> = { pool, schema, database };

/** The migration hooks of a model. */
export function migrationHooks(model: Model): MigrationHooks {
  return drivers[model].migration;
}

export type { MigrationHooks } from './migration-hooks.js';
