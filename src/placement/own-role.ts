import type { Config } from '../config/types.js';
import type { Fleet } from '../fleet/fleet.js';
import type { ShardClient } from '../fleet/shard-connections.js';
import { ADMIN_DATABASE } from './databases.js';
import { tenantRoleName } from './naming.js';
import { cutRoleLogin, endRoleSessions, setRoleLogin } from './roles.js';
import type { PlacedTenant } from './types.js';

// What the models that give a tenant a placement and a role of its own (schema, database) share.

export async function currentUser(c: ShardClient): Promise<string> {
  return (await c.query<{ u: string }>('select current_user as u')).rows[0].u;
}

/** LOGIN of the tenant's own role on or off, from the maintenance database (roles are cluster-wide). */
export async function setTenantLogin(fleet: Fleet, t: PlacedTenant, login: boolean): Promise<void> {
  await fleet.withClient(t.shard, ADMIN_DATABASE, (c) => setRoleLogin(c, tenantRoleName(t.slug), login));
}

/**
 * Suspend: LOGIN off (cutRoleLogin: even while the role holds itself locked), then the open
 * sessions ended; resume: LOGIN on. From the maintenance database (roles are cluster-wide).
 */
export async function suspendTenantRole(fleet: Fleet, _config: Config, t: PlacedTenant, suspended: boolean): Promise<number | null> {
  return fleet.withClient(t.shard, ADMIN_DATABASE, async (c) => {
    const role = tenantRoleName(t.slug);
    if (!suspended) {
      await setRoleLogin(c, role, true);
      return 0;
    }
    return (await cutRoleLogin(c, role)) + (await endRoleSessions(c, role));
  });
}
