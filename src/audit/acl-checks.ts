import type { ShardClient } from '../fleet/shard-connections.js';
import { ident, qualified } from '../sql.js';
import { finding } from './registry.js';
import type { Finding } from './types.js';

/** A schema that belongs to one tenant, and that tenant's role. */
export interface OwnedSchema {
  schema: string;
  slug: string;
  role: string;
}

const TENANT_ROLE = /^tenant_[a-z0-9_]+$/;

/**
 * Every schema and table grant in the given schemas ($1, with their tenant roles $2) held by
 * anyone but the owner, tenantctl and the schema's own role, with the tenant roles that are
 * members of the grantee.
 */
const CROSS_TENANT_ACL_SQL = `with s(nsp, own) as (select * from unnest($1::text[], $2::text[])),
        me as (select oid from pg_roles where rolname = current_user),
        acl as (
          select s.nsp as schema, null::text as rel, a.grantee, a.privilege_type, s.own
            from s join pg_namespace n on n.nspname = s.nsp, aclexplode(n.nspacl) a
           where a.grantee <> n.nspowner
          union all
          select s.nsp, c.relname, a.grantee, a.privilege_type, s.own
            from s join pg_namespace n on n.nspname = s.nsp
            join pg_class c on c.relnamespace = n.oid and c.relkind in ('r', 'p', 'v', 'm', 'f'), aclexplode(c.relacl) a
           where a.grantee <> c.relowner)
   select acl.schema, acl.rel, acl.grantee::int as grantee,
          case when acl.grantee = 0 then 'PUBLIC' else pg_get_userbyid(acl.grantee) end as grantee_name,
          array_agg(distinct acl.privilege_type order by acl.privilege_type) as privs,
          case when acl.grantee = 0 then '{}'::text[] else array(
            select r.rolname::text from pg_roles r
             where r.rolname like 'tenant\\_%' and r.rolname <> acl.own and r.oid <> acl.grantee
               and pg_has_role(r.oid, acl.grantee, 'MEMBER')) end as members
     from acl
    where acl.grantee not in (select oid from me)
      and (acl.grantee = 0 or pg_get_userbyid(acl.grantee) <> acl.own)
    group by acl.schema, acl.rel, acl.grantee, acl.own
    order by 1, 2 nulls first, 4`;

/**
 * Schema and table privileges in tenants' schemas held by anyone but the tenant's own role, the
 * object's owner and tenantctl: PUBLIC, another tenant's role, or a role another tenant's role
 * belongs to. One query for all schemas of the database (a thousand schemas cost one round trip).
 */
export async function crossTenantAcl(c: ShardClient, at: { shard: string; database: string }, owned: OwnedSchema[]): Promise<Finding[]> {
  if (owned.length === 0) return [];
  const res = await c.query<{
    schema: string;
    rel: string | null;
    grantee: number;
    grantee_name: string;
    privs: string[];
    members: string[];
  }>(CROSS_TENANT_ACL_SQL, [owned.map((o) => o.schema), owned.map((o) => o.role)]);
  const bySchema = new Map(owned.map((o) => [o.schema, o]));
  // One finding per (schema, grantee): the schema grant and its table grants together.
  const groups = new Map<
    string,
    { schema: string; grantee: string; who: string; rels: string[]; privs: Set<string>; schemaGrant: boolean }
  >();
  for (const r of res.rows) {
    const isTenantRole = TENANT_ROLE.test(r.grantee_name);
    const who =
      r.grantee === 0
        ? 'PUBLIC'
        : isTenantRole
          ? r.grantee_name
          : r.members.length
            ? `${r.grantee_name} (member: ${r.members.join(', ')})`
            : null;
    if (!who) continue;
    const key = `${r.schema}\0${r.grantee_name}`;
    const g = groups.get(key) ?? { schema: r.schema, grantee: r.grantee_name, who, rels: [], privs: new Set<string>(), schemaGrant: false };
    if (r.rel === null) g.schemaGrant = true;
    else g.rels.push(r.rel);
    r.privs.forEach((p) => g.privs.add(p));
    groups.set(key, g);
  }
  const out: Finding[] = [];
  for (const g of groups.values()) {
    const o = bySchema.get(g.schema)!;
    const grantee = g.grantee === 'PUBLIC' ? 'public' : ident(g.grantee);
    const fix = [
      ...(g.schemaGrant ? [`revoke all on schema ${ident(g.schema)} from ${grantee};`] : []),
      ...g.rels.map((rel) => `revoke all on ${qualified(g.schema, rel)} from ${grantee};`),
    ].join('\n');
    const what = [
      g.schemaGrant ? `schema ${g.schema}` : null,
      g.rels.length ? `${g.rels.length} table(s) (${g.rels.slice(0, 5).join(', ')}${g.rels.length > 5 ? ', …' : ''})` : null,
    ]
      .filter(Boolean)
      .join(' and ');
    out.push(
      finding('schema.cross-tenant-access', {
        ...at,
        tenant: o.slug,
        object: `schema ${g.schema}`,
        message: `${g.who} holds ${[...g.privs].join(', ')} on ${what} of tenant ${o.slug}`,
        fix,
      }),
    );
  }
  return out;
}

/** Tenant roles that are members of other tenant roles: SET ROLE makes one tenant the other. */
export async function tenantRoleMemberships(
  c: ShardClient,
  at: { shard: string; database: string },
  roleToSlug: Map<string, string>,
): Promise<Finding[]> {
  const res = await c.query<{ member: string; role: string }>(
    `select m.rolname as member, r.rolname as role from pg_auth_members am
       join pg_roles m on m.oid = am.member join pg_roles r on r.oid = am.roleid
      where m.rolname like 'tenant\\_%' and r.rolname like 'tenant\\_%' order by 1, 2`,
  );
  return res.rows
    .filter((r) => roleToSlug.has(r.role) || roleToSlug.has(r.member))
    .map((r) =>
      finding('schema.cross-tenant-access', {
        ...at,
        tenant: roleToSlug.get(r.role) ?? null,
        object: `role ${r.role}`,
        message: `tenant role ${r.member} is a member of ${r.role}: it can SET ROLE ${r.role} and use everything of tenant ${roleToSlug.get(r.role) ?? r.role}`,
        fix: `revoke ${ident(r.role)} from ${ident(r.member)};`,
      }),
    );
}

const OBJTYPES: Record<string, string> = { r: 'tables', S: 'sequences', f: 'functions', T: 'types', n: 'schemas' };

/**
 * Default privileges (pg_default_acl) that hand future objects to PUBLIC, or to a tenant role
 * other than the schema's own.
 */
export async function defaultPrivilegeChecks(
  c: ShardClient,
  at: { shard: string; database: string },
  owned: OwnedSchema[],
): Promise<Finding[]> {
  const res = await c.query<{
    for_role: string;
    nsp: string | null;
    objtype: string;
    grantee: number;
    grantee_name: string;
    privs: string[];
  }>(
    `select pg_get_userbyid(d.defaclrole) as for_role, n.nspname as nsp, d.defaclobjtype as objtype, a.grantee::int as grantee,
            case when a.grantee = 0 then 'PUBLIC' else pg_get_userbyid(a.grantee) end as grantee_name,
            array_agg(a.privilege_type order by a.privilege_type) as privs
       from pg_default_acl d left join pg_namespace n on n.oid = d.defaclnamespace, aclexplode(d.defaclacl) a
      where a.grantee <> d.defaclrole
      group by 1, 2, 3, 4, 5 order by 1, 2, 3, 5`,
  );
  const bySchema = new Map(owned.map((o) => [o.schema, o]));
  const out: Finding[] = [];
  for (const d of res.rows) {
    const o = d.nsp ? bySchema.get(d.nsp) : undefined;
    const toPublic = d.grantee === 0;
    const toOtherTenant = TENANT_ROLE.test(d.grantee_name) && (d.nsp === null || (o !== undefined && o.role !== d.grantee_name));
    if (!toPublic && !toOtherTenant) continue;
    const kind = OBJTYPES[d.objtype] ?? 'tables';
    const where = d.nsp ? ` in schema ${ident(d.nsp)}` : '';
    out.push(
      finding('schema.default-privileges', {
        ...at,
        tenant: o?.slug ?? null,
        object: `default privileges for ${d.for_role}${d.nsp ? ` in ${d.nsp}` : ''}`,
        message: `new ${kind} ${d.for_role} creates${d.nsp ? ` in ${d.nsp}` : ' anywhere in this database'} will grant ${d.privs.join(', ')} to ${d.grantee_name}`,
        fix: `alter default privileges for role ${ident(d.for_role)}${where} revoke all on ${kind} from ${toPublic ? 'public' : ident(d.grantee_name)};`,
      }),
    );
  }
  return out;
}

/** PUBLIC may create objects in schema `public` (PostgreSQL 14 and older granted it by default). */
export async function publicCreateCheck(c: ShardClient, at: { shard: string; database: string }): Promise<Finding[]> {
  const r = await c.query<{ ok: boolean }>(
    `select has_schema_privilege('public', n.oid, 'CREATE') as ok from pg_namespace n where n.nspname = 'public'`,
  );
  if (!r.rows[0]?.ok) return [];
  return [
    finding('schema.public-create', {
      ...at,
      tenant: null,
      object: `schema public in ${at.database}`,
      message: `every role, tenant roles included, can create objects in schema public of ${at.database}: one tenant can plant functions or tables that others' queries resolve to`,
      fix: 'revoke create on schema public from public;',
    }),
  ];
}

/**
 * search_path settings (per role in this database, per role, or for the database) that name a
 * schema someone else can create objects in: PUBLIC, or a role other than the setting's own.
 */
export async function searchPathChecks(
  c: ShardClient,
  at: { shard: string; database: string },
  roleToSlug: Map<string, string>,
  serving: string,
): Promise<Finding[]> {
  const settings = await c.query<{ role: string | null; db: boolean; path: string }>(
    `select case when s.setrole = 0 then null else pg_get_userbyid(s.setrole) end as role, s.setdatabase <> 0 as db,
            substr(cfg, length('search_path=') + 1) as path
       from pg_db_role_setting s, unnest(s.setconfig) cfg
      where (s.setdatabase = 0 or s.setdatabase = (select oid from pg_database where datname = current_database()))
        and cfg like 'search\\_path=%' and octet_length(cfg) <= 65536`,
  );
  const relevant = settings.rows.filter((s) => s.role === null || s.role === serving || roleToSlug.has(s.role));
  if (relevant.length === 0) return [];
  const names = [...new Set(relevant.flatMap((s) => splitPath(s.path)))];
  const writers = await c.query<{ nsp: string; pub: boolean; writers: string[] }>(
    `select n.nspname as nsp, has_schema_privilege('public', n.oid, 'CREATE') as pub,
            array(select pg_get_userbyid(a.grantee)::text from aclexplode(n.nspacl) a where a.privilege_type = 'CREATE' and a.grantee <> 0
                  union select pg_get_userbyid(n.nspowner)::text) as writers
       from pg_namespace n where n.nspname = any($1::text[])`,
    [names],
  );
  const me = (await c.query<{ u: string }>('select current_user as u')).rows[0].u;
  const out: Finding[] = [];
  for (const s of relevant) {
    for (const nsp of splitPath(s.path)) {
      const w = writers.rows.find((x) => x.nsp === nsp);
      if (!w) continue;
      const others = w.writers.filter((x) => x !== me && x !== s.role && (TENANT_ROLE.test(x) || x === serving));
      if (!w.pub && others.length === 0) continue;
      const who = w.pub ? 'PUBLIC' : others.join(', ');
      const target = `${s.role ? `role ${s.role}` : 'every role'}${s.db ? ` in database ${at.database}` : ''}`;
      out.push(
        finding('schema.writable-search-path', {
          ...at,
          tenant: s.role ? (roleToSlug.get(s.role) ?? null) : null,
          object: `search_path of ${target}`,
          message: `the search_path of ${target} (${s.path}) includes schema ${nsp}, where ${who} can create objects that shadow the names its queries use`,
          fix: s.role
            ? `alter role ${ident(s.role)}${s.db ? ` in database ${ident(at.database)}` : ''} reset search_path;`
            : `alter database ${ident(at.database)} reset search_path;`,
        }),
      );
    }
  }
  return out;
}

function splitPath(path: string): string[] {
  return path
    .split(',')
    .map((p) => p.trim().replace(/^"(.*)"$/, '$1'))
    .filter((p) => p && p !== '$user' && p !== 'pg_catalog' && p !== 'pg_temp');
}
