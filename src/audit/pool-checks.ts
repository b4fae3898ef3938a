import type { ShardClient } from '../fleet/shard-connections.js';
import { ident, qualified } from '../sql.js';
import { finding } from './registry.js';
import { ADMIN_POLICY, protectTableSql } from './sql-fixes.js';
import type { AuditEnv, AuditUnit, Finding } from './types.js';
import { scopedKeyColumn } from '../placement/scoped-rule.js';

interface TableRow {
  oid: number;
  table: string;
  column: string;
  attnum: number;
  enabled: boolean;
  forced: boolean;
  owner: string;
  partition: boolean;
  serving_select: boolean;
  serving_dangerous: string[] | null;
}

interface PolicyRow {
  relid: number;
  name: string;
  cmd: string;
  permissive: boolean;
  roles: string[];
  qual: string | null;
  check: string | null;
  uses_key: boolean;
}

/**
 * Tenant-scoped tables of a pool schema, partitions included (a partition's key column is its
 * root's), with what the serving role may do to them.
 */
export async function scopedTables(c: ShardClient, schema: string, env: AuditEnv, serving: string | null): Promise<TableRow[]> {
  const { config } = env;
  const res = await c.query<TableRow>(
    `select c.oid::int as oid, c.relname as table, a.attname as column, a.attnum::int as attnum,
            c.relrowsecurity as enabled, c.relforcerowsecurity as forced,
            pg_get_userbyid(c.relowner) as owner, c.relispartition as partition,
            case when $4::text is null then false else has_table_privilege($4::text, c.oid, 'SELECT') end as serving_select,
            case when $4::text is null then null else array_remove(array[
              case when has_table_privilege($4::text, c.oid, 'TRUNCATE') then 'TRUNCATE' end,
              case when has_table_privilege($4::text, c.oid, 'REFERENCES') then 'REFERENCES' end], null) end as serving_dangerous
       from pg_class c
       join pg_namespace n on n.oid = c.relnamespace
       join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
      where n.nspname = $1 and c.relkind in ('r', 'p')
        and a.attname = ${scopedKeyColumn('c', '$2', '$3')}
      order by c.relname`,
    [schema, JSON.stringify(config.tenantKey.tables ?? {}), config.tenantKey.column, serving],
  );
  return res.rows;
}

/** Does the serving role exist on this shard? (Roles are cluster-wide; a shard without pool tenants may lack it.) */
export async function roleExists(c: ShardClient, role: string): Promise<boolean> {
  return Boolean((await c.query('select 1 from pg_roles where rolname = $1', [role])).rowCount);
}

const norm = (s: string | null) => (s ?? '').replace(/[\s()]/g, '').toLowerCase();
/** PostgreSQL prints a constant-true expression as `true`. */
const isTrue = (s: string | null) => norm(s) === 'true';
/** The key compared with something per session: the setting, or the current role. */
const usesSession = (s: string | null) => /current_setting|current_user|session_user/i.test(s ?? '');

/**
 * Catalog checks of one pool target (the shard's pool database, schema `app`): row-level
 * security, policies, views, partitions, materialized views and foreign tables, grants to the
 * serving role, unique and foreign keys. Judged against tenantctl's design: tables owned by the
 * shard role are enabled but not forced (the owner is exempt, which tenantctl's own work relies
 * on), and `tenantctl_admin` to the shard role with `true` is expected.
 */
export async function poolChecks(c: ShardClient, unit: AuditUnit, env: AuditEnv, schema: string): Promise<Finding[]> {
  const { config } = env;
  const at = { shard: unit.shard, database: unit.database, tenant: null };
  const shardRole = (await c.query<{ u: string }>('select current_user as u')).rows[0].u;
  const servingName = config.servingRole.name;
  const serving = (await roleExists(c, servingName)) ? servingName : null;
  const tables = await scopedTables(c, schema, env, serving);
  const byOid = new Map(tables.map((t) => [t.oid, t]));
  const policiesOf = await policiesByTable(c, tables);

  const out: Finding[] = [];
  for (const t of tables) {
    const protect = protectTableSql(schema, t.table, t.column, t.owner, shardRole, config);
    out.push(...tableFindings(t, policiesOf.get(t.oid) ?? [], schema, { at, shardRole, servingName, protect }));
  }
  out.push(
    ...(await keyChecks(
      c,
      tables.filter((t) => !t.partition),
      byOid,
      schema,
      at,
    )),
  );
  out.push(...(await relationChecks(c, schema, tables, serving, shardRole, at)));
  return out;
}

/** What a table's findings are judged with: where, the shard and serving roles, and the fix that protects it. */
type TableCtx = { at: { shard: string; database: string; tenant: null }; shardRole: string; servingName: string; protect: string };

/** The policies of the given tables, by table oid (one query for the schema). */
async function policiesByTable(c: ShardClient, tables: TableRow[]): Promise<Map<number, PolicyRow[]>> {
  const policies = (
    await c.query<PolicyRow>(
      `select p.polrelid::int as relid, p.polname as name, p.polcmd as cmd, p.polpermissive as permissive,
              array(select case when r = 0 then 'public' else pg_get_userbyid(r)::text end from unnest(p.polroles) r)::text[] as roles,
              pg_get_expr(p.polqual, p.polrelid) as qual, pg_get_expr(p.polwithcheck, p.polrelid) as check,
              exists (select 1 from pg_depend d join pg_attribute a on a.attrelid = p.polrelid and a.attnum = d.refobjsubid
                       where d.classid = 'pg_policy'::regclass and d.objid = p.oid and d.refobjid = p.polrelid
                         and a.attname = any($2::text[])) as uses_key
         from pg_policy p where p.polrelid = any($1::oid[])`,
      [tables.map((t) => t.oid), [...new Set(tables.map((t) => t.column))]],
    )
  ).rows;
  const policiesOf = new Map<number, PolicyRow[]>();
  for (const p of policies) policiesOf.set(p.relid, [...(policiesOf.get(p.relid) ?? []), p]);
  return policiesOf;
}

/** One tenant-scoped table's findings: its row-level security state, owner, policies and grants. */
function tableFindings(t: TableRow, pols: PolicyRow[], schema: string, ctx: TableCtx): Finding[] {
  const { at, shardRole, servingName } = ctx;
  const obj = `${schema}.${t.table}`;
  const out: Finding[] = [];
  const state = rlsStateFinding(t, pols, obj, ctx);
  if (state) out.push(state);
  if (t.enabled && !t.forced && t.owner !== shardRole) {
    const servingOwns = t.owner === servingName;
    out.push(
      finding('pool.rls-not-forced', {
        ...at,
        object: obj,
        severity: servingOwns ? 'critical' : 'high',
        message: `${obj} is owned by ${t.owner}${servingOwns ? ' (the serving role)' : ''} and row-level security is not forced, so its owner bypasses the policies`,
        // Only the owner may ALTER the table; tenantctl does not take on another role to do it.
        fix: `alter table ${qualified(schema, t.table)} force row level security; -- as ${t.owner}`,
      }),
    );
  }
  for (const p of pols) out.push(...policyFindings(p, t, obj, ctx));
  if (t.serving_dangerous?.length) {
    out.push(
      finding('pool.dangerous-grant', {
        ...at,
        object: obj,
        message: `${servingName} holds ${t.serving_dangerous.join(' and ')} on ${obj}: TRUNCATE empties every tenant's rows regardless of policies; REFERENCES lets it probe keys through a foreign key`,
        fix: `revoke truncate, references on ${qualified(schema, t.table)} from ${ident(servingName)}, public;`,
      }),
    );
  }
  return out;
}

/** Is row-level security on and does a policy apply? At most one finding per table. */
function rlsStateFinding(t: TableRow, pols: PolicyRow[], obj: string, ctx: TableCtx): Finding | null {
  const { at, servingName, protect } = ctx;
  if (t.partition) {
    // A partition is read through its parent's policies, but read directly it has only its own.
    if (!t.serving_select || (t.enabled && pols.length > 0)) return null;
    return finding('pool.partition-unprotected', {
      ...at,
      object: obj,
      message: `partition ${obj} is readable by ${servingName} directly and has ${t.enabled ? 'no policy' : 'row-level security off'}: reading it bypasses its parent's policies`,
      fix: protect,
    });
  }
  if (!t.enabled && pols.length > 0) {
    return finding('pool.policies-while-disabled', {
      ...at,
      object: obj,
      message: `${obj} has ${pols.length} polic${pols.length === 1 ? 'y' : 'ies'} (${pols.map((p) => p.name).join(', ')}) but row-level security is off, so none applies`,
      fix: protect,
    });
  }
  if (!t.enabled) {
    return finding('pool.rls-disabled', {
      ...at,
      object: obj,
      message: `${obj} carries the tenant key ${t.column} but row-level security is off: every tenant sees every row`,
      fix: protect,
    });
  }
  if (pols.length === 0) {
    return finding('pool.no-policy', {
      ...at,
      object: obj,
      message: `${obj} has row-level security on but no policy: the serving role sees no rows at all`,
      fix: protect,
    });
  }
  return null;
}

function policyFindings(p: PolicyRow, t: TableRow, obj: string, ctx: TableCtx): Finding[] {
  const { at, shardRole, servingName, protect } = ctx;
  const object = `policy ${p.name} on ${obj}`;
  const expectedAdmin = p.name === ADMIN_POLICY && p.permissive && p.roles.length === 1 && p.roles[0] === shardRole;
  if (expectedAdmin) return [];
  const drop = `drop policy if exists ${ident(p.name)} on ${qualified(obj.split('.')[0], t.table)};\n${protect}`;
  const to = p.roles.join(', ');
  const reads = p.cmd === '*' || p.cmd === 'r' || p.cmd === 'w' || p.cmd === 'd';
  const writes = p.cmd === '*' || p.cmd === 'a' || p.cmd === 'w';
  if (p.permissive && ((reads && isTrue(p.qual)) || (p.cmd === 'a' && isTrue(p.check)))) {
    const broad = p.roles.includes('public') || p.roles.includes(servingName);
    return [
      finding('pool.always-true-policy', {
        ...at,
        object,
        severity: broad ? 'critical' : 'high',
        message: `permissive policy ${p.name} on ${obj} (to ${to}) is always true: it lets ${broad ? 'every tenant' : to} through every other policy`,
        fix: drop,
      }),
    ];
  }
  const out: Finding[] = [];
  if (p.permissive && writes && ((p.cmd === 'a' && p.check === null) || isTrue(p.check))) {
    out.push(
      finding('pool.unchecked-writes', {
        ...at,
        object,
        message: `policy ${p.name} on ${obj} (to ${to}) lets writes through without a check on the tenant key`,
        fix: drop,
      }),
    );
  }
  const expr = p.cmd === 'a' ? p.check : p.qual;
  if (p.permissive && expr !== null && !(p.uses_key && usesSession(expr))) {
    out.push(
      finding('pool.policy-without-key', {
        ...at,
        object,
        message: `permissive policy ${p.name} on ${obj} (to ${to}) does not compare the tenant key ${t.column} with the session's tenant (${expr}); permissive policies are OR-ed, so it widens what every tenant sees`,
        fix: drop,
      }),
    );
  }
  return out;
}

/** Unique keys and foreign keys between tenant tables that leave out the tenant key. */
async function keyChecks(
  c: ShardClient,
  tables: TableRow[],
  byOid: Map<number, TableRow>,
  schema: string,
  at: { shard: string; database: string; tenant: null },
): Promise<Finding[]> {
  const out: Finding[] = [];
  const uniques = await c.query<{ relid: number; name: string; keys: number[]; def: string; constraint: boolean }>(
    `select i.indrelid::int as relid, ic.relname as name, i.indkey::int2[]::int[] as keys, pg_get_indexdef(i.indexrelid) as def,
            exists (select 1 from pg_constraint k where k.conindid = i.indexrelid and k.contype in ('p', 'u')) as constraint
       from pg_index i join pg_class ic on ic.oid = i.indexrelid
      where i.indisunique and i.indrelid = any($1::oid[])`,
    [tables.map((t) => t.oid)],
  );
  for (const u of uniques.rows) {
    const t = byOid.get(u.relid)!;
    if (u.keys.includes(t.attnum)) continue;
    out.push(
      finding('pool.unique-without-key', {
        ...at,
        object: `index ${schema}.${u.name}`,
        message: `unique ${u.constraint ? 'constraint' : 'index'} ${u.name} on ${schema}.${t.table} leaves out ${t.column}: tenants collide on its values, and the error of a collision tells one tenant that another has that value (${u.def})`,
        fix: `-- rebuild ${u.name} with ${t.column} as its first column, e.g.:\n-- ${u.def.replace(/\(/, `(${ident(t.column)}, `)}`,
      }),
    );
  }
  const fks = await c.query<{ relid: number; refid: number; name: string; conkey: number[]; confkey: number[]; def: string }>(
    `select conrelid::int as relid, confrelid::int as refid, conname as name, conkey::int[] as conkey, confkey::int[] as confkey,
            pg_get_constraintdef(oid) as def
       from pg_constraint where contype = 'f' and conrelid = any($1::oid[]) and confrelid = any($1::oid[])`,
    [tables.map((t) => t.oid)],
  );
  for (const f of fks.rows) {
    const t = byOid.get(f.relid)!;
    const r = byOid.get(f.refid)!;
    const i = f.conkey.indexOf(t.attnum);
    if (i >= 0 && f.confkey[i] === r.attnum) continue;
    out.push(
      finding('pool.fk-without-key', {
        ...at,
        object: `constraint ${f.name} on ${schema}.${t.table}`,
        message: `foreign key ${f.name} (${f.def}) does not pair ${t.table}.${t.column} with ${r.table}.${r.column}: a row can point into another tenant's rows`,
        fix: `-- recreate ${f.name} with the tenant key in both column lists, e.g. foreign key (${t.column}, …) references ${qualified(schema, r.table)} (${r.column}, …)`,
      }),
    );
  }
  return out;
}

/**
 * Views, materialized views and foreign tables the serving role can read. A view without
 * security_invoker runs with its owner's rights, so the policies of the tables it reads are
 * checked against the owner (exempt as owner, or tenantctl_admin), not the reader.
 */
async function relationChecks(
  c: ShardClient,
  _schema: string,
  tables: TableRow[],
  serving: string | null,
  shardRole: string,
  at: { shard: string; database: string; tenant: null },
): Promise<Finding[]> {
  if (!serving) return [];
  const rels = await c.query<{
    oid: number;
    nsp: string;
    name: string;
    kind: string;
    owner: string;
    invoker: boolean;
    reads_tenant: boolean;
    owner_super: boolean;
  }>(
    `with recursive reads(view, rel) as (
       select r.ev_class, d.refobjid from pg_rewrite r
         join pg_depend d on d.classid = 'pg_rewrite'::regclass and d.objid = r.oid and d.refclassid = 'pg_class'::regclass
        where d.refobjid <> r.ev_class
       union
       select reads.view, d.refobjid from reads
         join pg_rewrite r on r.ev_class = reads.rel
         join pg_depend d on d.classid = 'pg_rewrite'::regclass and d.objid = r.oid and d.refclassid = 'pg_class'::regclass
        where d.refobjid <> r.ev_class)
     select c.oid::int as oid, n.nspname as nsp, c.relname as name, c.relkind as kind, pg_get_userbyid(c.relowner) as owner,
            coalesce(exists (select 1 from unnest(c.reloptions) o where o in ('security_invoker=true', 'security_invoker=on', 'security_invoker=1', 'security_invoker=yes')), false) as invoker,
            exists (select 1 from reads where reads.view = c.oid and reads.rel = any($2::oid[])) as reads_tenant,
            (select rolsuper from pg_roles where oid = c.relowner) as owner_super
       from pg_class c join pg_namespace n on n.oid = c.relnamespace
      where c.relkind in ('v', 'm', 'f')
        and n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg\\_%'
        and has_table_privilege($1::text, c.oid, 'SELECT')
      order by n.nspname, c.relname`,
    [serving, tables.map((t) => t.oid)],
  );
  const out: Finding[] = [];
  for (const v of rels.rows) {
    const obj = `${v.nsp}.${v.name}`;
    const q = qualified(v.nsp, v.name);
    if (v.kind === 'v') {
      if (v.invoker) continue;
      if (v.reads_tenant) {
        out.push(
          finding('pool.view-owner-rights', {
            ...at,
            object: obj,
            message: `view ${obj} reads tenant tables with the rights of its owner ${v.owner}, and ${serving} can read it: the tables' policies are checked against ${v.owner}, so every tenant's rows show through`,
            fix: `alter view ${q} set (security_invoker = true);`,
          }),
        );
      } else if (v.owner === shardRole || v.owner_super) {
        out.push(
          finding('shard-role.reach', {
            ...at,
            object: obj,
            message: `view ${obj} runs with the rights of ${v.owner}${v.owner === shardRole ? " (tenantctl's shard role)" : ' (a superuser)'} and ${serving} can read it: whatever ${v.owner} can read is reachable through it`,
            fix: `alter view ${q} set (security_invoker = true);`,
          }),
        );
      }
    } else {
      const what = v.kind === 'm' ? 'materialized view' : 'foreign table';
      out.push(
        finding('pool.matview-readable', {
          ...at,
          object: obj,
          message: `${what} ${obj} is readable by ${serving}; row-level security does not apply to ${what}s, so it shows what its query saw for every tenant`,
          fix: `revoke all on ${q} from ${ident(serving)}, public;`,
        }),
      );
    }
  }
  return out;
}
