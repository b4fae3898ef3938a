import type { Config } from '../config/types.js';
import type { Fleet } from '../fleet/fleet.js';
import { drivers, type PlacedTenant } from '../placement/drivers.js';
import { dropDatabase } from '../placement/databases.js';
import { databaseExists } from '../placement/pool-rows.js';
import { tenantRoleName } from '../placement/naming.js';
import { ident } from '../sql.js';
import type { MoveEnd } from './plan.js';

/**
 * Remove the tenant's data at one end of a move (the source at `move complete`, the copy at
 * `move rollback` or after a failed move), through the placement drivers: a pool end loses the
 * tenant's rows (proved gone), a schema or database end is dropped with its tenant role — except
 * that the role stays when the other end is an exclusive placement on the same cluster (roles are
 * cluster-wide: it is the tenant's role there too). Idempotent: a missing placement is fine.
 */
export async function removeEnd(
  deps: { config: Config; fleet: Fleet },
  slug: string,
  key: string,
  end: MoveEnd,
  other: MoveEnd,
): Promise<void> {
  const { config, fleet } = deps;
  const placed: PlacedTenant = { slug, key, model: end.model, shard: end.shard, database_name: end.database, schema_name: end.schema };
  const roleShared = other.model !== 'pool' && other.shard === end.shard;
  if (end.model === 'pool' || !roleShared) return drivers[end.model].remove(fleet, config, placed);
  if (end.model === 'database') {
    await dropDatabase(fleet, end.shard, end.database);
    return;
  }
  if (!(await databaseExists(fleet, end.shard, end.database))) return;
  await fleet.withTransaction(end.shard, end.database, async (c) => {
    await c.query(`drop schema if exists ${ident(end.schema)} cascade`);
    const tracked = await c.query(`select to_regclass('tenantctl.schema_migrations') as t`);
    if (tracked.rows[0].t) await c.query('delete from tenantctl.schema_migrations where target_schema = $1', [end.schema]);
    // The role's CONNECT on this shared database is no longer the tenant's business here.
    await c.query(`revoke connect on database ${ident(end.database)} from ${ident(tenantRoleName(slug))}`).catch(() => undefined);
  });
}
