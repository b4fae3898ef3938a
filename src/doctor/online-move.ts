import type { Fleet } from '../fleet/fleet.js';
import type { Shard } from '../config/types.js';
import { ADMIN_DATABASE } from '../placement/databases.js';
import type { Check } from './checks.js';

/**
 * Whether this shard could take part in an online move (logical replication): `wal_level =
 * logical`, and a role that may create subscriptions (superuser on PostgreSQL 15; membership in
 * pg_create_subscription on 16 and newer). Informational: `move --online` is not built yet, and
 * offline moves need none of it.
 */
export async function onlineMoveCheck(fleet: Fleet, shard: Shard): Promise<Check> {
  const { rows } = await fleet.withClient(shard.name, ADMIN_DATABASE, (c) =>
    c.query<{ role: string; sup: boolean; num: number; wal: string; sub: boolean }>(
      `select current_user as role, (select rolsuper from pg_roles where rolname = current_user) as sup,
              current_setting('server_version_num')::int as num, current_setting('wal_level') as wal,
              exists (select 1 from pg_roles where rolname = 'pg_create_subscription' and pg_has_role(current_user, oid, 'member')) as sub`,
    ),
  );
  const r = rows[0];
  const missing: string[] = [];
  if (r.wal !== 'logical') missing.push(`wal_level is ${r.wal}, not logical`);
  if (!r.sup && !(r.num >= 160000 && r.sub)) {
    missing.push(
      r.num >= 160000
        ? `role ${r.role} is not a member of pg_create_subscription`
        : `role ${r.role} is not a superuser (PostgreSQL 15 allows CREATE SUBSCRIPTION to superusers only)`,
    );
  }
  return {
    check: `online moves on ${shard.name}`,
    ok: true,
    detail: `${missing.length ? `would not be possible: ${missing.join('; ')}` : 'would be possible (logical replication)'}; move --online is not available in this version, offline moves work with the shard role as it is`,
  };
}
