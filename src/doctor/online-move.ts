import type { Fleet } from '../fleet/fleet.js';
import type { Shard } from '../config/types.js';
import { ADMIN_DATABASE } from '../placement/databases.js';
import type { Check } from './types.js';

/**
 * Which way an online move (`move --online`, src/move/online-preflight.ts) goes from and to this
 * shard: logical replication needs, as a source, `wal_level = logical` and a role with REPLICATION
 * (or superuser), and as a target a role that may create subscriptions (superuser on PostgreSQL
 * 15; membership in pg_create_subscription on 16 and newer); without them it goes by trigger
 * capture (src/move/capture/), which the shard role's ownership of the tenant tables allows.
 * Informational (ok either way): offline moves need none of it. The move's own preflight also
 * checks table ownership, free slots and, in a pool, replica identities.
 */
export async function onlineMoveCheck(fleet: Fleet, shard: Shard): Promise<Check> {
  const { rows } = await fleet.withClient(shard.name, ADMIN_DATABASE, (c) =>
    c.query<{ role: string; sup: boolean; repl: boolean; num: number; wal: string; sub: boolean }>(
      `select current_user as role, r.rolsuper as sup, r.rolreplication as repl,
              current_setting('server_version_num')::int as num, current_setting('wal_level') as wal,
              exists (select 1 from pg_roles g where g.rolname = 'pg_create_subscription' and pg_has_role(current_user, g.oid, 'member')) as sub
         from pg_roles r where r.rolname = current_user`,
    ),
  );
  const r = rows[0];
  const source: string[] = [];
  const target: string[] = [];
  const fixes: string[] = [];
  if (r.wal !== 'logical') {
    source.push(`wal_level is ${r.wal}, not logical`);
    fixes.push('set wal_level = logical and restart');
  }
  if (!r.sup && !r.repl) {
    source.push(`role ${r.role} has neither REPLICATION nor superuser`);
    fixes.push(`ALTER ROLE ${r.role} REPLICATION`);
  }
  if (!r.sup && !(r.num >= 160000 && r.sub)) {
    target.push(
      r.num >= 160000
        ? `role ${r.role} is not a member of pg_create_subscription`
        : `role ${r.role} is not a superuser (PostgreSQL 15 allows CREATE SUBSCRIPTION to superusers only)`,
    );
    fixes.push(r.num >= 160000 ? `GRANT pg_create_subscription TO ${r.role}` : 'connect tenantctl to it as a superuser for online moves');
  }
  const parts: string[] = [];
  if (source.length) parts.push(`from it not possible: ${source.join('; ')}`);
  if (target.length) parts.push(`to it not possible: ${target.join('; ')}`);
  return {
    check: `online moves on ${shard.name}`,
    ok: true,
    detail: parts.length
      ? `move --online goes by trigger capture (logical replication ${parts.join('; ')}; fix: ${fixes.join('; ')} to use it); offline moves work with the shard role as it is`
      : 'move --online possible from and to it (logical replication)',
  };
}
