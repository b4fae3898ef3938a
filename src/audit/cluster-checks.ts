import type { TenantRow } from '../catalog/tables.js';
import type { ShardClient } from '../fleet/shard-connections.js';
import { tenantDatabase, tenantRole } from '../placement/placement.js';
import { ident } from '../sql.js';
import { asRole, rolledBack } from './as-role.js';
import { tenantRoleMemberships } from './acl-checks.js';
import { finding } from './registry.js';
import { MAINTENANCE_DATABASES } from '../placement/databases.js';
import { ownershipChecks } from './ownership-checks.js';
import { oversizedRoleSettings, roleChecks, servingConnectionLimit, servingRoleSettings, suspendedRoleLogin } from './role-checks.js';
import type { AuditEnv, AuditUnit, Finding } from './types.js';

/** Tenants whose placement should exist (not mid-provisioning, failed or being deleted). */
export function placed(t: TenantRow): boolean {
  return t.status === 'active' || t.status === 'suspended';
}

/**
 * Once per shard, on its maintenance database: roles (serving, tenants, tenantctl's own),
 * CONNECT on databases, tenant roles and databases against the catalog, and the live probe of
 * which tenant databases each database tenant's role may connect to.
 */
export async function clusterChecks(c: ShardClient, unit: AuditUnit, env: AuditEnv, probes: boolean): Promise<Finding[]> {
  const { config } = env;
  const shard = env.config.shards.find((s) => s.name === unit.shard)!;
  const at = { shard: unit.shard, database: unit.database };
  const onShard = env.allTenants.filter((t) => t.shard === unit.shard);
  const roleToSlug = new Map(
    onShard.flatMap((t) => {
      const role = tenantRole(t);
      return role ? [[role, t.slug] as const] : [];
    }),
  );
  const selected = unit.tenants;
  const out: Finding[] = [];

  const existingRoles = new Set(
    (
      await c.query<{ r: string }>(`select rolname as r from pg_roles where rolname like 'tenant\\_%' or rolname = $1`, [
        config.servingRole.name,
      ])
    ).rows.map((r) => r.r),
  );
  const checkRoles = new Map<string, string | null>();
  if (existingRoles.has(config.servingRole.name)) checkRoles.set(config.servingRole.name, null);
  for (const t of selected) {
    const role = tenantRole(t);
    if (role && existingRoles.has(role)) checkRoles.set(role, t.slug);
  }
  out.push(...(await roleChecks(c, unit, checkRoles)), ...(await oversizedRoleSettings(c, unit, checkRoles)));
  const suspendedRoles = new Map(
    selected.flatMap((t) => {
      const role = tenantRole(t);
      return role && t.status === 'suspended' && existingRoles.has(role) ? [[role, t.slug] as const] : [];
    }),
  );
  out.push(...(await suspendedRoleLogin(c, unit, suspendedRoles)));
  if (existingRoles.has(config.servingRole.name)) {
    out.push(...(await servingRoleSettings(c, unit, config.servingRole.name)));
    out.push(...(await servingConnectionLimit(c, unit, config)));
  }
  out.push(...(await tenantRoleMemberships(c, at, roleToSlug)));
  out.push(...(await ownershipChecks(c, at, selected)));

  // Databases tenantctl made on this shard: the pool and schema databases, and database tenants'.
  const dbTenants = new Map(
    onShard.flatMap((t) => {
      const db = tenantDatabase(t);
      return db ? [[db, t] as const] : [];
    }),
  );
  const dbs = await c.query<{ datname: string; public_connect: boolean; grantees: { role: string; members: string[] }[] }>(
    `select d.datname, has_database_privilege('public', d.datname, 'CONNECT') as public_connect,
            coalesce((select json_agg(json_build_object('role', g.rolname, 'members', array(
                        select r.rolname from pg_roles r where r.rolname like 'tenant\\_%' and r.oid <> g.oid and pg_has_role(r.oid, g.oid, 'MEMBER'))))
                 from aclexplode(d.datacl) a join pg_roles g on g.oid = a.grantee
                where a.privilege_type = 'CONNECT' and a.grantee <> d.datdba), '[]') as grantees
       from pg_database d where d.datname = any($1::text[]) or d.datname like 't\\_%'`,
    [[shard.poolDatabase, shard.tenantDatabase, config.catalog.database, ...MAINTENANCE_DATABASES]],
  );
  const selectedDbs = new Set(selected.map((t) => t.database_name));
  for (const d of dbs.rows) {
    const owner = dbTenants.get(d.datname);
    const ours = owner || d.datname === shard.poolDatabase || d.datname === shard.tenantDatabase;
    // tenantctl's own databases: tenants need none of them (issue 17); the owner closes them.
    const controlPlane = (MAINTENANCE_DATABASES as readonly string[]).includes(d.datname) || d.datname === config.catalog.database;
    if (controlPlane && d.public_connect) {
      out.push(
        finding('database.control-plane-open', {
          ...at,
          tenant: null,
          object: `database ${d.datname}`,
          message: `CONNECT on ${d.datname === config.catalog.database ? "tenantctl's catalog database" : 'the maintenance database'} ${d.datname} is granted to PUBLIC: every tenant role can connect to it, take advisory locks there and create objects tenantctl does not watch`,
          fix: `revoke connect, temporary on database ${ident(d.datname)} from public; grant connect on database ${ident(d.datname)} to current_user; -- as its owner`,
        }),
      );
    }
    if (!ours) {
      if (
        /^t_[a-z0-9_]+$/.test(d.datname) &&
        !env.allTenants.some((t) => t.shard === unit.shard && t.database_name === d.datname) &&
        !env.kept.some((k) => k.shard === unit.shard && k.database === d.datname)
      ) {
        out.push(
          finding('catalog.orphan-placement', {
            ...at,
            tenant: null,
            object: `database ${d.datname}`,
            message: `database ${d.datname} on ${unit.shard} looks like a tenant's but no catalog row names it (a deleted tenant's leftovers, or one recreated by hand)`,
            fix: `-- check what it holds, then: drop database ${ident(d.datname)};`,
          }),
        );
      }
      continue;
    }
    if (owner && !selectedDbs.has(d.datname)) continue;
    if (d.public_connect) {
      out.push(
        finding('database.public-connect', {
          ...at,
          tenant: owner?.slug ?? null,
          object: `database ${d.datname}`,
          message: `CONNECT on database ${d.datname} is granted to PUBLIC: every role on the shard, every tenant role included, can connect to it`,
          fix: `revoke connect on database ${ident(d.datname)} from public;`,
        }),
      );
    }
    if (!owner) continue;
    const own = tenantRole(owner);
    for (const g of d.grantees) {
      const intruders = [...(g.role !== own && /^tenant_/.test(g.role) ? [g.role] : []), ...g.members.filter((m) => m !== own)];
      if (intruders.length === 0) continue;
      out.push(
        finding('database.cross-tenant-connect', {
          ...at,
          tenant: owner.slug,
          object: `database ${d.datname}`,
          message: `${intruders.join(', ')} can connect to ${d.datname}, the database of tenant ${owner.slug}${g.role !== intruders[0] ? ` (through ${g.role})` : ''}`,
          fix:
            g.role === own
              ? intruders.map((m) => `revoke ${ident(own)} from ${ident(m)};`).join('\n')
              : `revoke connect on database ${ident(d.datname)} from ${ident(g.role)};`,
        }),
      );
    }
  }

  // The catalog against reality: missing placements and roles, orphan databases and roles.
  const dbNames = new Set(dbs.rows.map((d) => d.datname));
  for (const t of selected.filter(placed)) {
    if (!dbNames.has(t.database_name)) {
      out.push(
        finding('catalog.placement-missing', {
          ...at,
          tenant: t.slug,
          object: `database ${t.database_name}`,
          message: `tenant ${t.slug} is ${t.status} in the catalog but its database ${t.database_name} does not exist on ${unit.shard}`,
          fix: null,
        }),
      );
    }
    const role = tenantRole(t);
    if (role && !existingRoles.has(role)) {
      out.push(
        finding('catalog.placement-missing', {
          ...at,
          tenant: t.slug,
          object: `role ${role}`,
          message: `tenant ${t.slug} is ${t.status} but its role ${role} does not exist on ${unit.shard}`,
          fix: null,
        }),
      );
    }
  }
  for (const r of existingRoles) {
    if (r === config.servingRole.name || roleToSlug.has(r) || env.kept.some((k) => k.shard === unit.shard && k.role === r)) continue;
    out.push(
      finding('catalog.orphan-role', {
        ...at,
        tenant: null,
        object: `role ${r}`,
        message: `role ${r} on ${unit.shard} looks like a tenant role but no tenant of this shard has it`,
        fix: `-- in each database of the shard: drop owned by ${ident(r)}; then: drop role ${ident(r)};`,
      }),
    );
  }

  if (probes)
    out.push(
      ...(await databaseConnectProbe(
        c,
        unit,
        [...dbTenants.values()].filter((t) => placed(t) && dbNames.has(t.database_name)),
      )),
    );
  return out;
}

/**
 * As each selected database tenant's role (SET ROLE, rolled back): which tenant databases does
 * PostgreSQL let it connect to? Logging in needs its credentials, which tenantctl does not hold;
 * the CONNECT privilege evaluated as that role is what the login would be checked against.
 */
async function databaseConnectProbe(c: ShardClient, unit: AuditUnit, dbTenants: TenantRow[]): Promise<Finding[]> {
  // dbTenants: placed tenants with a database of their own, so membership says both.
  const selected = unit.tenants.filter((t) => dbTenants.some((d) => d.slug === t.slug));
  if (selected.length === 0 || dbTenants.length < 2) return [];
  const names = dbTenants.map((t) => t.database_name);
  const out: Finding[] = [];
  await rolledBack(c, async () => {
    for (const t of selected) {
      const role = tenantRole(t)!;
      const reach = await asRole(c, role, () =>
        c.query<{ datname: string }>(
          `select datname from pg_database where datname = any($1::text[]) and datname <> $2 and has_database_privilege(datname, 'CONNECT')`,
          [names, t.database_name],
        ),
      );
      for (const r of reach.rows) {
        out.push(
          finding('probe.tenant-role-cross-database', {
            shard: unit.shard,
            database: unit.database,
            tenant: t.slug,
            object: `database ${r.datname}`,
            message: `probe: as ${role}, PostgreSQL grants CONNECT to ${r.datname}, another tenant's database`,
            fix: null,
          }),
        );
      }
    }
  });
  return out;
}
