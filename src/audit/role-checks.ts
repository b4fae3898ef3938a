import type { Config } from '../config/types.js';
import type { ShardClient } from '../fleet/shard-connections.js';
import { ident } from '../sql.js';
import { finding } from './registry.js';
import type { AuditUnit, Finding } from './types.js';

/**
 * Cluster-wide, once per shard: the serving role and the tenant roles must not be superuser or
 * BYPASSRLS, directly or through any role they are a member of (membership lets them SET ROLE,
 * inherited or not); tenantctl's own shard role needs neither.
 */
export async function roleChecks(c: ShardClient, unit: AuditUnit, roles: Map<string, string | null>): Promise<Finding[]> {
  const out: Finding[] = [];
  const names = [...roles.keys()];
  const res = await c.query<{ role: string; via: string; sup: boolean; bypass: boolean }>(
    `with priv as (select oid, rolname, rolsuper, rolbypassrls from pg_roles where rolsuper or rolbypassrls)
     select r.rolname as role, p.rolname as via, p.rolsuper as sup, p.rolbypassrls as bypass
       from pg_roles r join priv p on p.oid = r.oid or pg_has_role(r.oid, p.oid, 'MEMBER')
      where r.rolname = any($1::text[])
      order by 1, 2`,
    [names],
  );
  for (const r of res.rows) {
    const what = r.sup ? 'SUPERUSER' : 'BYPASSRLS';
    const direct = r.role === r.via;
    out.push(
      finding('role.bypasses-rls', {
        shard: unit.shard,
        database: unit.database,
        tenant: roles.get(r.role) ?? null,
        object: `role ${r.role}`,
        message: direct
          ? `role ${r.role} is ${what}: row-level security and grants do not hold for it`
          : `role ${r.role} is a member of ${r.via}, which is ${what}: by SET ROLE it escapes row-level security and grants`,
        fix: direct
          ? `alter role ${ident(r.role)} nosuperuser nobypassrls; -- needs a superuser`
          : `revoke ${ident(r.via)} from ${ident(r.role)};`,
        // Revoking a membership is a grant tenantctl can manage; role attributes need a superuser.
        fixable: !direct && !r.sup,
      }),
    );
  }
  const me = await c.query<{ u: string; sup: boolean; bypass: boolean }>(
    'select rolname as u, rolsuper as sup, rolbypassrls as bypass from pg_roles where rolname = current_user',
  );
  const m = me.rows[0];
  if (m && (m.sup || m.bypass)) {
    out.push(
      finding('shard-role.privileged', {
        shard: unit.shard,
        database: unit.database,
        tenant: null,
        object: `role ${m.u}`,
        message: `tenantctl connects to shard ${unit.shard} as ${m.u}, which is ${[m.sup && 'SUPERUSER', m.bypass && 'BYPASSRLS'].filter(Boolean).join(' and ')}; tenantctl needs only LOGIN CREATEDB CREATEROLE, and everything it owns runs with these rights`,
        fix: `create role tenantctl login createdb createrole password '…'; -- then point the shard url at it; or: alter role ${ident(m.u)} nosuperuser nobypassrls`,
      }),
    );
  }
  return out;
}

/**
 * The serving role's role-level settings (`ALTER ROLE … SET`, in any database). tenantctl sets
 * none: a pool tenant's limits travel in its URL. But any role may set its own, and the serving
 * role is every pool tenant's: one tenant's `alter role current_user set
 * default_transaction_read_only = on` makes every pool tenant of the shard read-only from its next
 * connection. (Its password too may be set by any tenant through it; a CREATEROLE role cannot read
 * pg_authid to see that, so only the symptom, failed logins, shows.)
 */
export async function servingRoleSettings(c: ShardClient, unit: AuditUnit, serving: string): Promise<Finding[]> {
  // Each setting cut short: a tenant may store hundreds of MB in one (role.oversized-settings).
  const { rows } = await c.query<{ db: string | null; settings: string[] }>(
    `select d.datname as db, array(select case when length(cfg) > 200 then left(cfg, 200) || '…' else cfg end
                                     from unnest(s.setconfig) cfg) as settings
       from pg_db_role_setting s join pg_roles r on r.oid = s.setrole
       left join pg_database d on d.oid = s.setdatabase
      where r.rolname = $1 and s.setconfig is not null
      order by 1 nulls first`,
    [serving],
  );
  return rows.map((r) =>
    finding('role.serving-settings', {
      shard: unit.shard,
      database: unit.database,
      tenant: null,
      object: `role ${serving}${r.db ? ` in database ${r.db}` : ''}`,
      message: `the serving role ${serving} has role-level settings${r.db ? ` in database ${r.db}` : ''} (${r.settings.join(', ')}): every pool tenant's next session runs with them; tenantctl sets none (a pool tenant's limits are in its URL), so a tenant set them through its own session`,
      fix: `alter role ${ident(serving)}${r.db ? ` in database ${ident(r.db)}` : ''} reset all;`,
    }),
  );
}

/**
 * The serving role's CONNECTION LIMIT against servingRole.connectionLimit. Every pool tenant's
 * application logs in as that one role: without the limit, the pool tenants of a shard can
 * together take every connection of it, so tenantctl cannot suspend or delete one of them and
 * the other models' tenants cannot log in. Only a CREATEROLE role or a superuser can change it,
 * never a tenant, so a difference is an operator's (or an older tenantctl's) doing.
 */
export async function servingConnectionLimit(c: ShardClient, unit: AuditUnit, config: Pick<Config, 'servingRole'>): Promise<Finding[]> {
  const want = config.servingRole.connectionLimit;
  if (want === undefined) return [];
  const serving = config.servingRole.name;
  const { rows } = await c.query<{ limit: number }>('select rolconnlimit as limit from pg_roles where rolname = $1', [serving]);
  if (!rows[0] || rows[0].limit === want) return [];
  const has = rows[0].limit < 0 ? 'no connection limit' : `connection limit ${rows[0].limit}`;
  return [
    finding('role.serving-connection-limit', {
      shard: unit.shard,
      database: unit.database,
      tenant: null,
      object: `role ${serving}`,
      message: `the serving role ${serving} has ${has} on ${unit.shard}, where servingRole.connectionLimit is ${want}: ${rows[0].limit < 0 || rows[0].limit > want ? "the pool tenants together may take more of the shard's connections than the config leaves them" : 'the pool tenants get fewer connections than the config gives them'}`,
      fix: `alter role ${ident(serving)} connection limit ${want};`,
    }),
  ];
}

/**
 * A tenant the catalog says is suspended whose own role may still log in: what an interrupted
 * suspend or delete leaves (LOGIN off failed, the status already written), or a role someone
 * changed by hand. Its application is not kept out. The fix turns LOGIN off; the sessions already
 * open end with `tenant suspend` run again.
 */
export async function suspendedRoleLogin(c: ShardClient, unit: AuditUnit, suspended: Map<string, string>): Promise<Finding[]> {
  if (suspended.size === 0) return [];
  const { rows } = await c.query<{ role: string }>(
    'select rolname as role from pg_roles where rolcanlogin and rolname = any($1::text[]) order by 1',
    [[...suspended.keys()]],
  );
  return rows.map((r) =>
    finding('role.login-while-suspended', {
      shard: unit.shard,
      database: unit.database,
      tenant: suspended.get(r.role)!,
      object: `role ${r.role}`,
      message: `tenant ${suspended.get(r.role)} is suspended in the catalog, but its role ${r.role} may log in: its application is not kept out (then run tenantctl tenant suspend ${suspended.get(r.role)} again to end the sessions already open)`,
      fix: `alter role ${ident(r.role)} nologin;`,
    }),
  );
}

/**
 * Role settings of a tenant role or the serving role larger than any real setting (8 kB). Any
 * role may `alter role current_user set application_name = <hundreds of MB>`, in every database:
 * stored outside every quota (`usage` adds them to a tenant's bytes), sent back to every login as
 * a notice, and read by whoever lists role settings. Only the names and sizes are read here.
 */
export async function oversizedRoleSettings(c: ShardClient, unit: AuditUnit, roles: Map<string, string | null>): Promise<Finding[]> {
  if (roles.size === 0) return [];
  const { rows } = await c.query<{ role: string; db: string | null; name: string; bytes: string }>(
    `select r.rolname as role, d.datname as db, split_part(cfg, '=', 1) as name, octet_length(cfg)::bigint as bytes
       from pg_db_role_setting s join pg_roles r on r.oid = s.setrole
       left join pg_database d on d.oid = s.setdatabase, unnest(s.setconfig) cfg
      where r.rolname = any($1::text[]) and octet_length(cfg) > 8192
      order by 4 desc, 1, 2 nulls first, 3`,
    [[...roles.keys()]],
  );
  return rows.map((r) =>
    finding('role.oversized-settings', {
      shard: unit.shard,
      database: unit.database,
      tenant: roles.get(r.role) ?? null,
      object: `role ${r.role}${r.db ? ` in database ${r.db}` : ''}`,
      message: `role ${r.role} keeps ${Number(r.bytes).toLocaleString('en-US')} bytes in its setting ${r.name}${r.db ? ` in database ${r.db}` : ''}: data outside every table and quota, sent to each of its logins`,
      fix: `alter role ${ident(r.role)}${r.db ? ` in database ${ident(r.db)}` : ''} reset ${ident(r.name)};`,
    }),
  );
}
