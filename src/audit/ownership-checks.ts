import type { TenantRow } from '../catalog/tables.js';
import type { ShardClient } from '../fleet/shard-connections.js';
import { tenantRole } from '../placement/placement.js';
import { finding } from './registry.js';
import type { Finding } from './types.js';

/**
 * A tenant role that owns objects outside its own placement's database (a large object in the
 * catalog database, a table in `postgres`): nobody looks there, and a delete that drops only the
 * placement cannot drop the role. pg_shdepend is cluster-wide, so one query on any database sees
 * every database's ownership records.
 */
export async function ownershipChecks(c: ShardClient, at: { shard: string; database: string }, tenants: TenantRow[]): Promise<Finding[]> {
  const home = new Map(
    tenants.flatMap((t) => {
      const role = tenantRole(t);
      return role ? [[role, t] as const] : [];
    }),
  );
  if (home.size === 0) return [];
  const { rows } = await c.query<{ role: string; db: string; n: number }>(
    `select r.rolname as role, d.datname as db, count(*)::int as n
       from pg_shdepend s
       join pg_roles r on r.oid = s.refobjid and s.refclassid = 'pg_authid'::regclass
       join pg_database d on d.oid = s.dbid
      where s.deptype = 'o' and r.rolname = any($1::text[])
      group by 1, 2 order by 1, 2`,
    [[...home.keys()]],
  );
  return rows
    .filter((r) => r.db !== home.get(r.role)!.database_name)
    .map((r) => {
      const t = home.get(r.role)!;
      return finding('role.tenant-owns-elsewhere', {
        ...at,
        tenant: t.slug,
        object: `role ${r.role}`,
        message: `tenant role ${r.role} owns ${r.n} object(s) in database ${r.db}, outside its placement ${t.database_name}: they escape its placement's checks and block dropping the role`,
        fix: `-- in database ${r.db}, as a member of ${r.role}: reassign owned by ${r.role} to current_user; (or drop owned by ${r.role})`,
      });
    });
}
