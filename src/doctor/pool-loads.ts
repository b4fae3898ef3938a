import type { Fleet } from '../fleet/fleet.js';
import type { Shard } from '../config/types.js';
import { ADMIN_DATABASE } from '../placement/databases.js';
import type { Check } from './types.js';

/**
 * Whether tenantctl's role may set session_replication_role, so moves and restores into a pool
 * check foreign keys once per tenant (src/copy/pool-load.ts) instead of row by row. Informational:
 * both ways are correct; the grant only makes pool loads faster.
 */
export async function poolLoadsCheck(fleet: Fleet, shard: Shard): Promise<Check> {
  const can = await fleet.withClient(shard.name, ADMIN_DATABASE, async (c) => {
    const { rows } = await c.query<{ role: string; sup: boolean; num: number }>(
      `select current_user as role, (select rolsuper from pg_roles where rolname = current_user) as sup,
              current_setting('server_version_num')::int as num`,
    );
    const r = rows[0];
    if (r.sup) return { role: r.role, ok: true };
    // has_parameter_privilege exists from PostgreSQL 15 on, as does the grant itself.
    if (r.num < 150000) return { role: r.role, ok: false, old: true };
    const p = await c.query<{ ok: boolean }>(`select has_parameter_privilege(current_user, 'session_replication_role', 'SET') as ok`);
    return { role: r.role, ok: p.rows[0].ok };
  });
  return {
    check: `pool loads on ${shard.name}`,
    ok: true,
    detail: can.ok
      ? `${can.role} may set session_replication_role: pool loads check foreign keys once per tenant`
      : can.old
        ? 'row by row (PostgreSQL before 15 cannot grant SET on a parameter); moves and restores into pools work, more slowly'
        : `row by row; grant set on parameter session_replication_role to ${can.role} (as a superuser) to speed up moves and restores into pools`,
  };
}
