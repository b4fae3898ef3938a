import type { ShardClient } from '../fleet/shard-connections.js';
import { schemaTables, sharingProblems } from '../placement/pool/shared-tables.js';
import { ADMIN_POLICY_NAME, POLICY_NAME } from '../placement/pool/rls.js';
import { ident, qualified } from '../sql.js';
import { finding } from './registry.js';
import type { AuditEnv, AuditUnit, Finding } from './types.js';
import { scopedKeyColumn } from '../placement/scoped-rule.js';

type At = { shard: string; database: string; tenant: null };

/**
 * The doors of a pool that row-level security on keyed tables does not watch (issue 17): tables
 * without the key that are not declared shared, shared tables the serving role may write, columns
 * that point at a tenant's rows without being the key, exclusion constraints that compare rows
 * across tenants, permissive policies other than tenantctl's that reach the serving role,
 * relations of other schemas it can read, roles it inherits that see every row, large objects
 * and per-value statistics of the key. Each family is independent, so one that cannot run costs
 * only its own findings (units.ts guards them).
 */
export const SHARING_FAMILIES: {
  name: string;
  run: (c: ShardClient, at: At, env: AuditEnv, schema: string, serving: string | null) => Promise<Finding[]>;
}[] = [
  { name: 'declared sharing', run: declaredSharing },
  { name: 'tenant references', run: tenantReferences },
  { name: 'exclusion constraints', run: exclusionConstraints },
  { name: 'foreign policies', run: foreignPolicies },
  { name: 'other schemas', run: otherSchemas },
  { name: 'serving role membership', run: servingMembership },
  { name: 'large objects', run: largeObjects },
  { name: 'key statistics', run: keyStatistics },
];

export function atOf(unit: AuditUnit): At {
  return { shard: unit.shard, database: unit.database, tenant: null };
}

async function declaredSharing(c: ShardClient, at: At, env: AuditEnv, schema: string, serving: string | null): Promise<Finding[]> {
  const tables = await schemaTables(c, schema, env.config);
  const out: Finding[] = sharingProblems(schema, tables, env.config).map((p) =>
    finding(p.kind === 'undeclared-keyless' ? 'pool.keyless-table' : 'pool.shared-with-key', {
      ...at,
      object: `${schema}.${p.table}`,
      message: p.message,
      fix: `-- ${p.fix}`,
    }),
  );
  if (!serving) return out;
  const readOnly = tables.filter((t) => !t.keyed && t.shared === 'read').map((t) => t.table);
  const { rows } = await c.query<{ table: string }>(
    `select c.relname as table from pg_class c join pg_namespace n on n.oid = c.relnamespace, pg_roles r
      where n.nspname = $1 and c.relname = any($2::text[]) and r.rolname = $3
        and has_table_privilege(r.oid, c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE')
      order by 1`,
    [schema, readOnly, serving],
  );
  for (const r of rows) {
    out.push(
      finding('pool.shared-writable', {
        ...at,
        object: `${schema}.${r.table}`,
        message: `shared table ${schema}.${r.table} is declared read-only but ${serving} may change it: one tenant's write changes what every tenant reads`,
        fix: `revoke insert, update, delete, truncate on ${qualified(schema, r.table)} from ${ident(serving)}, public;`,
      }),
    );
  }
  return out;
}

/** Foreign keys into a keyed table's key from a column that is not the referencing table's key. */
async function tenantReferences(c: ShardClient, at: At, env: AuditEnv, schema: string): Promise<Finding[]> {
  const { rows } = await c.query<{ child: string; col: string; parent: string; name: string; keyed: boolean }>(
    `with keyed as (
       select c.oid, a.attnum, a.attname from pg_class c
         join pg_namespace n on n.oid = c.relnamespace
         join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
        where n.nspname = $1 and c.relkind in ('r', 'p') and a.attname = ${scopedKeyColumn('c', '$2', '$3')})
     select ch.relname as child, ca.attname as col, pa.relname as parent, k.conname as name,
            exists (select 1 from keyed where keyed.oid = k.conrelid) as keyed
       from pg_constraint k
       join keyed pk on pk.oid = k.confrelid
       join lateral unnest(k.conkey, k.confkey) as u(child_att, parent_att) on u.parent_att = pk.attnum
       join pg_class ch on ch.oid = k.conrelid
       join pg_class pa on pa.oid = k.confrelid
       join pg_attribute ca on ca.attrelid = k.conrelid and ca.attnum = u.child_att
      where k.contype = 'f' and ch.relnamespace = (select oid from pg_namespace where nspname = $1)
        and not exists (select 1 from keyed ck where ck.oid = k.conrelid and ck.attnum = u.child_att)
      order by 1, 2`,
    [schema, JSON.stringify(env.config.tenantKey.tables ?? {}), env.config.tenantKey.column],
  );
  return rows.map((r) =>
    finding('pool.key-renamed', {
      ...at,
      object: `${schema}.${r.child}.${r.col}`,
      message: r.keyed
        ? `${schema}.${r.child}.${r.col} points at a tenant (${r.name} references ${r.parent}'s key) but is not the tenant key of ${r.child}: row-level security filters on the key column, not on it, so a row whose ${r.col} names another tenant than its key is that key's tenant's to read, and moves, backups and deletes follow the key`
        : `${schema}.${r.child}.${r.col} points at a tenant (${r.name} references ${r.parent}'s key) but is not the tenant key and ${r.child} has no key column: row-level security does not filter on it, so every tenant reads every row of ${r.child}`,
      fix: `-- rename ${r.col} to the key column ${env.config.tenantKey.column} (or add the key and keep it equal), or map it in tenantKey.tables: { ${r.child}: ${r.col} }`,
    }),
  );
}

async function exclusionConstraints(c: ShardClient, at: At, env: AuditEnv, schema: string): Promise<Finding[]> {
  const { rows } = await c.query<{ table: string; name: string; def: string; column: string }>(
    `select c.relname as table, k.conname as name, pg_get_constraintdef(k.oid) as def, a.attname as column
       from pg_constraint k
       join pg_class c on c.oid = k.conrelid
       join pg_namespace n on n.oid = c.relnamespace
       join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
      where n.nspname = $1 and k.contype = 'x' and a.attname = ${scopedKeyColumn('c', '$2', '$3')}
        and not (a.attnum = any(k.conkey))
      order by 1, 2`,
    [schema, JSON.stringify(env.config.tenantKey.tables ?? {}), env.config.tenantKey.column],
  );
  return rows.map((r) =>
    finding('pool.exclusion-without-key', {
      ...at,
      object: `constraint ${r.name} on ${schema}.${r.table}`,
      message: `exclusion constraint ${r.name} on ${schema}.${r.table} (${r.def}) leaves out ${r.column}: one tenant's insert conflicts with another's rows, and the error reveals them`,
      fix: `-- recreate ${r.name} with (${r.column} with =) as its first element (btree_gist)`,
    }),
  );
}

/**
 * Permissive policies other than tenantctl's two that reach the serving role (directly, via PUBLIC
 * or a role it inherits) and compare the key: the ones pool-checks.ts lets pass because they use
 * the key and the session, such as a prefix match (`key::text like current_setting(…) || '%'`),
 * which sees every tenant once the setting reads ''. Policies without the key are
 * `pool.policy-without-key` there.
 */
async function foreignPolicies(c: ShardClient, at: At, env: AuditEnv, schema: string, serving: string | null): Promise<Finding[]> {
  if (!serving) return [];
  const { rows } = await c.query<{ table: string; name: string; qual: string | null }>(
    `select c.relname as table, p.polname as name, pg_get_expr(p.polqual, p.polrelid) as qual
       from pg_policy p
       join pg_class c on c.oid = p.polrelid
       join pg_namespace n on n.oid = c.relnamespace
       join pg_roles s on s.rolname = $4
      where n.nspname = $1 and p.polpermissive and p.polname not in ($2, $3)
        and (0 = any(p.polroles) or exists (select 1 from unnest(p.polroles) r where r <> 0 and pg_has_role(s.oid, r, 'MEMBER')))
        and exists (select 1 from pg_depend d join pg_attribute a on a.attrelid = p.polrelid and a.attnum = d.refobjsubid
                     where d.classid = 'pg_policy'::regclass and d.objid = p.oid and d.refobjid = p.polrelid
                       and a.attname = ${scopedKeyColumn('c', '$5', '$6')})
      order by 1, 2`,
    [schema, POLICY_NAME, ADMIN_POLICY_NAME, serving, JSON.stringify(env.config.tenantKey.tables ?? {}), env.config.tenantKey.column],
  );
  return rows.map((r) =>
    finding('pool.foreign-permissive-policy', {
      ...at,
      object: `policy ${r.name} on ${schema}.${r.table}`,
      message: `permissive policy ${r.name} on ${schema}.${r.table} reaches ${serving} beside ${POLICY_NAME}: permissive policies are OR-ed, so whatever it lets through (${r.qual ?? 'no USING'}) is seen past the tenant key`,
      fix: `drop policy if exists ${ident(r.name)} on ${qualified(schema, r.table)}; -- or recreate it AS RESTRICTIVE`,
    }),
  );
}

const SYSTEM_SCHEMAS = `n.nspname not in ('pg_catalog', 'information_schema', 'tenantctl') and n.nspname not like 'pg\\_%' and n.nspname not like 'tenantctl\\_%'`;

async function otherSchemas(c: ShardClient, at: At, _env: AuditEnv, schema: string, serving: string | null): Promise<Finding[]> {
  if (!serving) return [];
  const { rows } = await c.query<{ nsp: string; name: string }>(
    `select n.nspname as nsp, c.relname as name
       from pg_class c join pg_namespace n on n.oid = c.relnamespace, pg_roles r
      where r.rolname = $2 and n.nspname <> $1 and ${SYSTEM_SCHEMAS}
        and c.relkind in ('r', 'p', 'v', 'm', 'f') and not c.relispartition
        and has_schema_privilege(r.oid, n.oid, 'USAGE') and has_table_privilege(r.oid, c.oid, 'SELECT')
      order by 1, 2`,
    [schema, serving],
  );
  return rows.map((r) =>
    finding('pool.other-schema-readable', {
      ...at,
      object: `${r.nsp}.${r.name}`,
      message: `${serving} can read ${r.nsp}.${r.name}, outside the pool schema ${schema}: no tenant key filters it`,
      fix: `revoke all on ${qualified(r.nsp, r.name)} from ${ident(serving)}, public;`,
    }),
  );
}

/** The serving role inheriting tenantctl's role, or a role that owns tenant tables, sees every row. */
async function servingMembership(c: ShardClient, at: At, _env: AuditEnv, schema: string, serving: string | null): Promise<Finding[]> {
  if (!serving) return [];
  const { rows } = await c.query<{ role: string; why: string }>(
    `select distinct o.rolname as role,
            case when o.rolname = current_user then 'tenantctl''s shard role' else 'the owner of tenant tables' end as why
       from pg_roles s, pg_roles o
      where s.rolname = $2 and o.oid <> s.oid and pg_has_role(s.oid, o.oid, 'MEMBER')
        and (o.rolname = current_user
             or exists (select 1 from pg_class c join pg_namespace n on n.oid = c.relnamespace
                         where n.nspname = $1 and c.relowner = o.oid and c.relkind in ('r', 'p')))
      order by 1`,
    [schema, serving],
  );
  return rows.map((r) =>
    finding('role.serving-member-of-admin', {
      ...at,
      object: `role ${serving}`,
      message: `${serving} is a member of ${r.role} (${r.why}): it acts with that role's rights (tenantctl_admin or table ownership) and sees every tenant's rows`,
      fix: `revoke ${ident(r.role)} from ${ident(serving)};`,
    }),
  );
}

async function largeObjects(c: ShardClient, at: At, _env: AuditEnv, _schema: string, serving: string | null): Promise<Finding[]> {
  if (!serving) return [];
  const { rows } = await c.query<{ n: number }>(
    `select count(*)::int as n from pg_largeobject_metadata m, pg_roles r
      where r.rolname = $1 and (m.lomowner = r.oid or exists (
              select 1 from aclexplode(m.lomacl) x where x.grantee in (0, r.oid) and x.privilege_type = 'SELECT'))`,
    [serving],
  );
  if (rows[0].n === 0) return [];
  return [
    finding('pool.large-objects', {
      ...at,
      object: `large objects of ${at.database}`,
      message: `${rows[0].n} large object(s) in ${at.database} are readable by ${serving}; large objects have no row-level security, so any tenant can read another's by its oid`,
      fix: `-- keep tenant files in a keyed bytea column or in object storage; move the large objects out, then: select lo_unlink(oid) from pg_largeobject_metadata;`,
    }),
  ];
}

/**
 * Per-value statistics of a key column let a tenant estimate another's keys and row counts
 * through EXPLAIN (the planner uses them for leakproof operators under row-level security).
 * tenantctl sets the key columns' statistics target to 0 (rls.ts); this finds columns where it is
 * not 0.
 */
async function keyStatistics(c: ShardClient, at: At, env: AuditEnv, schema: string): Promise<Finding[]> {
  const { rows } = await c.query<{ table: string; column: string }>(
    `select c.relname as table, a.attname as column
       from pg_class c
       join pg_namespace n on n.oid = c.relnamespace
       join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
      where n.nspname = $1 and c.relkind in ('r', 'p') and a.attname = ${scopedKeyColumn('c', '$2', '$3')}
        and (coalesce(a.attstattarget, -1) <> 0)
      order by 1`,
    [schema, JSON.stringify(env.config.tenantKey.tables ?? {}), env.config.tenantKey.column],
  );
  return rows.map((r) =>
    finding('pool.key-statistics', {
      ...at,
      object: `${schema}.${r.table}.${r.column}`,
      message: `the planner keeps per-value statistics of the tenant key ${schema}.${r.table}.${r.column}: through EXPLAIN's row estimates a tenant can learn other tenants' keys and sizes`,
      fix: `alter table ${qualified(schema, r.table)} alter column ${ident(r.column)} set statistics 0;`,
    }),
  );
}
