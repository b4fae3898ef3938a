import type { Fleet } from '../fleet/fleet.js';
import { ADMIN_DATABASE } from './databases.js';
import type { Placement } from './naming.js';

/** A placement about to be made for a tenant not yet in the catalog, with the role it would get. */
export interface NewPlacement extends Placement {
  slug: string;
  role: string | null;
}

/**
 * What of a new schema tenant's placement already exists: its schema in the shared schemas
 * database, its role. Roles are cluster-wide, so once the schemas database is known to exist it
 * is one query there, not a connection to the maintenance database per tenant (bulk runs would
 * churn connections).
 */
export async function existingSchemaPlacement(fleet: Fleet, t: NewPlacement): Promise<string[]> {
  const found: string[] = [];
  const known = `${t.shard}/${t.database}`;
  if (fleet.knownDatabases.has(known)) {
    const r = await fleet.withClient(t.shard, t.database, (c) =>
      c.query<{ role: boolean; schema: boolean }>(
        'select exists (select 1 from pg_roles where rolname = $1) as role, exists (select 1 from pg_namespace where nspname = $2) as schema',
        [t.role, t.schema],
      ),
    );
    if (r.rows[0].schema) found.push(`schema ${t.schema} in database ${t.database}`);
    if (r.rows[0].role) found.push(`role ${t.role}`);
    return found;
  }
  const r = await maintenanceProbe(fleet, t);
  // One a killed create left with connections off holds no schema yet; the create opens it.
  if (r.db && r.open) {
    fleet.knownDatabases.add(known);
    const s = await fleet.withClient(t.shard, t.database, (c) => c.query('select 1 from pg_namespace where nspname = $1', [t.schema]));
    if (s.rowCount) found.push(`schema ${t.schema} in database ${t.database}`);
  }
  if (r.role) found.push(`role ${t.role}`);
  return found;
}

/** What of a new database tenant's placement already exists: its database, its role. */
export async function existingDatabasePlacement(fleet: Fleet, t: NewPlacement): Promise<string[]> {
  const r = await maintenanceProbe(fleet, t);
  const found: string[] = [];
  if (r.db) found.push(`database ${t.database}`);
  if (r.role) found.push(`role ${t.role}`);
  return found;
}

async function maintenanceProbe(fleet: Fleet, t: NewPlacement): Promise<{ role: boolean; db: boolean; open: boolean }> {
  const r = await fleet.withClient(t.shard, ADMIN_DATABASE, (c) =>
    c.query<{ role: boolean; db: boolean; open: boolean }>(
      `select exists (select 1 from pg_roles where rolname = $1) as role, exists (select 1 from pg_database where datname = $2) as db,
              exists (select 1 from pg_database where datname = $2 and datallowconn) as open`,
      [t.role, t.database],
    ),
  );
  return r.rows[0];
}
