import type { Config, Shard } from '../config/types.js';
import type { Fleet } from '../fleet/fleet.js';
import { ADMIN_DATABASE } from '../placement/databases.js';
import { MODEL_TRAITS } from '../placement/placement.js';
import type { Check } from './types.js';

/**
 * Whether one tenant can take every connection of the shard. A tenant role's CONNECTION LIMIT
 * (its tier's connectionLimit) bounds that tenant, but PostgreSQL refuses connections cluster-wide
 * at max_connections: a tier whose limit is above what the shard has left after its superuser
 * reserve and tenantctl's own budget (the shard's maxConnections) lets one tenant lock out its
 * neighbours and tenantctl itself (no suspend, no delete of that tenant). A tier of an own-role
 * model with no limit at all is a warning. Pool tiers are not refused by PostgreSQL (the serving
 * role is shared; `usage` counts them), so they are left out.
 */
export async function connectionHeadroomCheck(config: Config, fleet: Fleet, shard: Shard): Promise<Check> {
  const { rows } = await fleet.withClient(shard.name, ADMIN_DATABASE, (c) =>
    c.query<{ max: number; reserved: number }>(
      `select current_setting('max_connections')::int as max, current_setting('superuser_reserved_connections')::int as reserved`,
    ),
  );
  const { max, reserved } = rows[0];
  const headroom = max - reserved - shard.maxConnections;
  const tiers = Object.entries(config.tiers).filter(([, t]) => MODEL_TRAITS[t.model].ownRole);
  const over = tiers.filter(([, t]) => t.connectionLimit !== undefined && t.connectionLimit > headroom);
  const unlimited = tiers.filter(([, t]) => t.connectionLimit === undefined).map(([name]) => name);
  const check = `connection headroom on ${shard.name}`;
  const room = `max_connections ${max}, ${reserved} reserved for superusers, ${shard.maxConnections} for tenantctl (maxConnections): ${headroom} for tenants`;
  if (over.length) {
    return {
      check,
      ok: false,
      detail: `${over.map(([name, t]) => `tier ${name}'s connectionLimit ${t.connectionLimit}`).join(', ')} lets one tenant take every connection of ${shard.name} (${room}), locking out its neighbours and tenantctl itself; lower it to at most ${headroom}, or raise max_connections`,
    };
  }
  if (unlimited.length) {
    return {
      check,
      ok: true,
      warning: true,
      detail: `tier${unlimited.length === 1 ? '' : 's'} ${unlimited.join(', ')} set${unlimited.length === 1 ? 's' : ''} no connectionLimit: one tenant can take every connection of ${shard.name} (${room}); set one at most ${headroom}`,
    };
  }
  return { check, ok: true, detail: room };
}
