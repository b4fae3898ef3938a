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
 * model with no limit at all is a warning. Pool tenants share the serving role, so PostgreSQL
 * bounds them together, by servingRole.connectionLimit: above the headroom fails, none set warns
 * (when the config has a pool tier).
 */
export async function connectionHeadroomCheck(config: Config, fleet: Fleet, shard: Shard): Promise<Check> {
  const { rows } = await fleet.withClient(shard.name, ADMIN_DATABASE, (c) =>
    c.query<{ max: number; reserved: number }>(
      `select current_setting('max_connections')::int as max, current_setting('superuser_reserved_connections')::int as reserved`,
    ),
  );
  const { max, reserved } = rows[0];
  const headroom = max - reserved - shard.maxConnections;
  const tiers = Object.entries(config.tiers);
  const ownRole = tiers.filter(([, t]) => MODEL_TRAITS[t.model].ownRole);
  const pooled = tiers.some(([, t]) => !MODEL_TRAITS[t.model].ownRole);
  const serving = config.servingRole;
  const over = [
    ...ownRole
      .filter(([, t]) => t.connectionLimit !== undefined && t.connectionLimit > headroom)
      .map(([name, t]) => `tier ${name}'s connectionLimit ${t.connectionLimit} lets one tenant`),
    ...(pooled && serving.connectionLimit !== undefined && serving.connectionLimit > headroom
      ? [`servingRole.connectionLimit ${serving.connectionLimit} lets the pool tenants (all on role ${serving.name})`]
      : []),
  ];
  const unlimited = [
    ...ownRole.filter(([, t]) => t.connectionLimit === undefined).map(([name]) => `tier ${name} sets no connectionLimit: one tenant`),
    ...(pooled && serving.connectionLimit === undefined
      ? [`servingRole sets no connectionLimit: the pool tenants (all on role ${serving.name})`]
      : []),
  ];
  const check = `connection headroom on ${shard.name}`;
  const room = `max_connections ${max}, ${reserved} reserved for superusers, ${shard.maxConnections} for tenantctl (maxConnections): ${headroom} for tenants`;
  if (over.length) {
    return {
      check,
      ok: false,
      detail: `${over.join('; ')} take every connection of ${shard.name} (${room}), locking out the other tenants and tenantctl itself; lower it to at most ${headroom}, or raise max_connections`,
    };
  }
  if (unlimited.length) {
    return {
      check,
      ok: true,
      warning: true,
      detail: `${unlimited.join('; ')} can take every connection of ${shard.name} (${room}); set one at most ${headroom}`,
    };
  }
  return { check, ok: true, detail: room };
}
