import type { Fleet } from '../../fleet/fleet.js';
import { ensureSchema } from '../../sql.js';
import { ADMIN_DATABASE, dropDatabase, ensureDatabase } from '../databases.js';
import { DATABASE_SCHEMA, tenantDatabaseName, tenantRoleName } from '../naming.js';
import { closeRoleReach, dropRoleEverywhere } from '../role-drop.js';
import { grantPlacementToRole } from '../shared-read-only.js';
import { ensureTenantRole, grantConnect, setRoleSearchPath } from '../roles.js';
import { inTransaction } from '../../fleet/fleet.js';
import { existingDatabasePlacement } from '../existing.js';
import { exclusiveMigration } from '../migration-hooks.js';
import { setTenantLogin, suspendTenantRole } from '../own-role.js';
import type { OwnPlacementDriver, PlacedTenant } from '../types.js';
import { createAtVersion, ownPlacementKind } from '../driver-kinds.js';

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

export const database: OwnPlacementDriver = {
  model: 'database',
  ...ownPlacementKind,
  fence: { write: 'trigger', switch: 'trigger' },
  migration: exclusiveMigration,
  names: (slug) => ({ database: tenantDatabaseName(slug), schema: DATABASE_SCHEMA }),
  createAtVersion: (fleet, config, t, steps) => createAtVersion(database, fleet, config, t, steps),
  async prepare(fleet, _config, t) {
    await prepareTenantDatabase(fleet, t);
    await fleet.withClient(t.shard, t.database_name, (c) => ensureSchema(c, t.schema_name));
  },
  async finish(fleet, config, t) {
    await fleet.withTransaction(t.shard, t.database_name, async (c) =>
      grantPlacementToRole(c, config, t.schema_name, tenantRoleName(t.slug)),
    );
  },
  async createInOneTransaction(fleet, config, t, steps) {
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
        await grantPlacementToRole(c, config, t.schema_name, tenantRoleName(t.slug));
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
