import type { Fleet } from '../../fleet/fleet.js';
import type { ShardClient } from '../../fleet/shard-connections.js';
import { ensureSchema, ident } from '../../sql.js';
import { TenantctlError } from '../../errors.js';
import { ensureDatabase } from '../databases.js';
import { tenantRoleName, tenantSchemaName } from '../naming.js';
import { closeRoleReach, dropRoleEverywhere } from '../role-drop.js';
import { grantPlacementToRole } from '../shared-read-only.js';
import { ensureTenantRole, grantConnect, setRoleSearchPath } from '../roles.js';
import { inTransaction } from '../../fleet/fleet.js';
import { databaseExists } from '../pool/rows.js';
import { existingSchemaPlacement } from '../existing.js';
import { exclusiveMigration } from '../migration-hooks.js';
import { setTenantLogin, suspendTenantRole } from '../own-role.js';
import type { OwnPlacementDriver, PlacedTenant } from '../types.js';
import { createAtVersion, ownPlacementKind } from '../driver-kinds.js';

export const schema: OwnPlacementDriver = {
  model: 'schema',
  ...ownPlacementKind,
  fence: { write: 'trigger', switch: 'trigger' },
  migration: exclusiveMigration,
  names: (slug, dbs) => ({ database: dbs.tenantDatabase, schema: tenantSchemaName(slug) }),
  createAtVersion: (fleet, config, t, steps) => createAtVersion(schema, fleet, config, t, steps),
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
  async finish(fleet, config, t) {
    await fleet.withTransaction(t.shard, t.database_name, async (c) =>
      grantPlacementToRole(c, config, t.schema_name, tenantRoleName(t.slug)),
    );
  },
  async createInOneTransaction(fleet, config, t, steps) {
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
        await grantPlacementToRole(c, config, t.schema_name, role);
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
 * Extensions a migration created in this tenant's schema (`create extension` runs with the
 * tenant's search_path, so the first tenant migrated gets it; the other tenants' objects then use
 * it from there: an exclusion constraint's operator class, a column's type). The schema's CASCADE
 * drop would drop the extension and, with it, those objects of every other tenant of the
 * database, silently. Moved to `public` first where PostgreSQL lets tenantctl's role (it must own
 * the extension's objects, which a trusted extension's are not); else, when objects outside the
 * schema use it, the drop stops, naming them, with nothing changed. Used by none, it goes with
 * the schema.
 */
async function keepExtensionsOf(c: ShardClient, t: PlacedTenant): Promise<void> {
  const { rows } = await c.query<{ oid: number; name: string }>(
    `select e.oid, e.extname as name from pg_extension e join pg_namespace n on n.oid = e.extnamespace where n.nspname = $1 order by 2`,
    [t.schema_name],
  );
  for (const e of rows) {
    await c.query('savepoint keep_extension');
    try {
      await c.query(`alter extension ${ident(e.name)} set schema public`);
      await c.query('release savepoint keep_extension');
      continue;
    } catch {
      await c.query('rollback to savepoint keep_extension');
    }
    const users = await usersOutside(c, e.oid, t.schema_name);
    if (users.length === 0) continue;
    throw new TenantctlError(
      'DELETE_INCOMPLETE',
      `extension ${e.name} lives in ${t.schema_name}, the schema of tenant ${t.slug}, and ${users.join(', ')} use${users.length === 1 ? 's' : ''} it: dropping the schema would drop them too; nothing was dropped`,
      `as a superuser: alter extension ${e.name} set schema public; then run the command again`,
    );
  }
}

/** Tables, indexes, constraints, types and functions outside `schema` that use a member of the extension (its operator classes, types, functions). */
async function usersOutside(c: ShardClient, ext: number, schema: string): Promise<string[]> {
  const { rows } = await c.query<{ name: string }>(
    `with members as (select classid, objid from pg_depend where refclassid = 'pg_extension'::regclass and refobjid = $1 and deptype = 'e'),
          users as (select distinct d.classid, d.objid from pg_depend d join members m on d.refclassid = m.classid and d.refobjid = m.objid where d.deptype = 'n')
     select format('%I.%I', n.nspname, r.relname) as name from users u join pg_class r on u.classid = 'pg_class'::regclass and r.oid = u.objid join pg_namespace n on n.oid = r.relnamespace where n.nspname <> $2
     union select format('%I.%I', n.nspname, k.conname) from users u join pg_constraint k on u.classid = 'pg_constraint'::regclass and k.oid = u.objid join pg_namespace n on n.oid = k.connamespace where n.nspname <> $2
     union select format('%I.%I', n.nspname, y.typname) from users u join pg_type y on u.classid = 'pg_type'::regclass and y.oid = u.objid join pg_namespace n on n.oid = y.typnamespace where n.nspname <> $2
     union select format('%I.%I', n.nspname, p.proname) from users u join pg_proc p on u.classid = 'pg_proc'::regclass and p.oid = u.objid join pg_namespace n on n.oid = p.pronamespace where n.nspname <> $2
     order by 1 limit 10`,
    [ext, schema],
  );
  return rows.map((r) => r.name);
}

/**
 * Drop a schema tenant's schema and its migration records (then `also`, in the same
 * transaction); false when its database is not there (nothing to drop).
 */
async function dropTenantSchema(fleet: Fleet, t: PlacedTenant, also?: (c: ShardClient) => Promise<void>): Promise<boolean> {
  if (!(await databaseExists(fleet, t.shard, t.database_name))) return false;
  await fleet.withTransaction(t.shard, t.database_name, async (c) => {
    await keepExtensionsOf(c, t);
    await c.query(`drop schema if exists ${ident(t.schema_name)} cascade`);
    const tracked = await c.query(`select to_regclass('tenantctl.schema_migrations') as t`);
    if (tracked.rows[0].t) await c.query('delete from tenantctl.schema_migrations where target_schema = $1', [t.schema_name]);
    await also?.(c);
  });
  return true;
}
