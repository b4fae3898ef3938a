/**
 * Row-level security for pool targets, managed by tenantctl rather than written in migrations.
 * Every tenant-scoped table (one with the tenant-key column, or the column named for it in
 * `tenantKey.tables`), partitions included, gets RLS enabled and two permissive policies:
 *
 * - `tenantctl_isolation`, for everyone: the key column equals the `rls.setting` session setting;
 * - `tenantctl_admin`, for tenantctl's own shard role only: every row. Its work (deleting a pool
 *   tenant's rows, data migrations, copies) must never be filtered.
 *
 * FORCE is set only when the table's owner is another role than tenantctl's (the serving role,
 * say): an owner skips RLS unless it is forced, so a foreign owner must be subject to it, while
 * tenantctl as the owner stays exempt, which also lets it COPY FROM into pool tables (PostgreSQL
 * refuses COPY FROM to any role RLS applies to). The serving role is never exempt: it is not the
 * owner, or the table is forced.
 *
 * @example
 *   await inTransaction(client, () => repairRlsPolicies(client, 'app', config));
 *   // as app_user: select set_config('app.tenant_id', '<key>', false); select * from tasks;
 *
 * @module
 */
import type pg from 'pg';
import type { Config } from '../../config/types.js';
import { TenantctlError } from '../../errors.js';
import { ident, isAlreadyExists, literal, qualified } from '../../sql.js';
import { scramVerifier } from '../scram.js';
import { assertDeclaredSharing, grantServingRole, schemaTables, sharingProblems, writableReadOnlyTables } from './shared-tables.js';
import { closeSideDoors, findSideDoors } from './side-doors.js';
import { scopedKeyColumn, scopedRuleParams } from '../scoped-rule.js';

/** The policy that lets a session see the rows of the tenant named by the setting, and no others. */
export const POLICY_NAME = 'tenantctl_isolation';
/** The policy that lets tenantctl's own shard role see and change every row. */
export const ADMIN_POLICY_NAME = 'tenantctl_admin';

type Queryable = Pick<pg.ClientBase, 'query'>;
type RlsConfig = Pick<Config, 'tenantKey' | 'rls' | 'servingRole'>;

export interface ScopedTable {
  table: string;
  /** The key column of this table: tenantKey.column, or its override. */
  column: string;
}

export interface TableRlsState extends ScopedTable {
  /** A partition: protected on its own (it can be read directly), deleted through its parent. */
  partition: boolean;
  owner: string;
  /** tenantctl's role on this connection (current_user). */
  admin: string;
  enabled: boolean;
  forced: boolean;
  /** The isolation policy's USING expression as PostgreSQL prints it, if it exists. */
  policy: string | null;
  /** Its WITH CHECK expression. */
  check: string | null;
  /** The roles it applies to ('public' for everyone). */
  policyRoles: string[] | null;
  /** The admin policy's USING / WITH CHECK and roles, if it exists. */
  adminPolicy: string | null;
  adminCheck: string | null;
  adminRoles: string[] | null;
  /** Permissive policies of someone else's that apply to the serving role: they would widen isolation. */
  widening: string[];
  /** The key column's statistics target: 0, so the planner keeps no per-value statistics of keys. */
  stattarget: number;
}

/**
 * Tables of `schema` that carry the tenant key, parents only (partitions are reached through
 * their parent), sorted by name. What delete, key checks and copies work on.
 */
export async function tenantScopedTables(client: Queryable, schema: string, config: RlsConfig): Promise<ScopedTable[]> {
  // Not rlsState's query with its policies and role checks: on a new connection (usage's, a
  // delete's) that one took about 2.5 times as long, for the two columns wanted here.
  const res = await client.query<ScopedTable>(
    `select c.relname as table, a.attname as column
       from pg_class c
       join pg_namespace n on n.oid = c.relnamespace
       join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
      where n.nspname = $1 and c.relkind in ('r', 'p') and not c.relispartition
        and a.attname = ${scopedKeyColumn('c', '$2', '$3')}
      order by c.relname`,
    [schema, ...scopedRuleParams(config)],
  );
  return res.rows;
}

/** Tenant-scoped tables, partitions included, with their RLS state (for audit and repair). */
export async function rlsState(client: Queryable, schema: string, config: RlsConfig): Promise<TableRlsState[]> {
  const res = await client.query<TableRlsState>(
    `select c.relname as table, a.attname as column, c.relispartition as partition,
            pg_get_userbyid(c.relowner) as owner, current_user as admin,
            c.relrowsecurity as enabled, c.relforcerowsecurity as forced,
            p.policy, p.check, p.roles as "policyRoles",
            ap.policy as "adminPolicy", ap.check as "adminCheck", ap.roles as "adminRoles",
            coalesce(a.attstattarget, -1)::int as stattarget,
            array(select w.polname::text from pg_policy w
                   where w.polrelid = c.oid and w.polpermissive and w.polname not in ($4, $5)
                     and (0 = any(w.polroles)
                          -- to the serving role, or to a role it is a member of (it inherits the policy)
                          or exists (select 1 from pg_roles s, unnest(w.polroles) r
                                      where s.rolname = $6 and r <> 0 and pg_has_role(s.oid, r, 'MEMBER')))
                   order by 1) as widening
       from pg_class c
       join pg_namespace n on n.oid = c.relnamespace
       join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
       left join lateral (
         select pg_get_expr(polqual, polrelid) as policy, pg_get_expr(polwithcheck, polrelid) as check,
                array(select case when r = 0 then 'public' else pg_get_userbyid(r)::text end from unnest(polroles) r order by 1) as roles
           from pg_policy where polrelid = c.oid and polname = $4 and polcmd = '*' and polpermissive
       ) p on true
       left join lateral (
         select pg_get_expr(polqual, polrelid) as policy, pg_get_expr(polwithcheck, polrelid) as check,
                array(select case when r = 0 then 'public' else pg_get_userbyid(r)::text end from unnest(polroles) r order by 1) as roles
           from pg_policy where polrelid = c.oid and polname = $5 and polcmd = '*' and polpermissive
       ) ap on true
      where n.nspname = $1
        and c.relkind in ('r', 'p')
        and a.attname = ${scopedKeyColumn('c', '$2', '$3')}
      order by c.relname`,
    [
      schema,
      JSON.stringify(config.tenantKey.tables ?? {}),
      config.tenantKey.column,
      POLICY_NAME,
      ADMIN_POLICY_NAME,
      config.servingRole.name,
    ],
  );
  return res.rows;
}

/** The policy expression for one key column. */
export function policyExpression(column: string, config: Pick<Config, 'tenantKey' | 'rls'>): string {
  // nullif: after a transaction-local set_config ends, the setting reads '' rather than NULL,
  // and ''::uuid would be an error instead of "no rows".
  return `${ident(column)} = nullif(current_setting(${literal(config.rls.setting)}, true), '')::${config.tenantKey.type}`;
}

export interface RlsRepair {
  /** Every tenant-scoped table (parents). */
  tables: ScopedTable[];
  /** Tables (partitions included) whose RLS was changed. */
  changed: string[];
  /** Side doors closed, in words for the report (views made security_invoker, grants revoked). */
  secured: string[];
}

/**
 * Bring a pool target to tenantctl's managed state: RLS and both policies on every tenant-scoped
 * table whose state differs (ALTER TABLE and CREATE POLICY take an exclusive lock, so a table
 * already right is left alone), the serving role's grants (always re-issued: new tables need
 * them), then the side doors closed (pool-side-doors.ts). Run it inside the caller's
 * transaction so the tables are never seen half protected. A hole it cannot close throws
 * RLS_UNSAFE, which fails the migration.
 */
export async function repairRlsPolicies(client: Queryable, schema: string, config: RlsConfig): Promise<RlsRepair> {
  const tables = await assertDeclaredSharing(client, schema, config);
  const states = await rlsState(client, schema, config);
  assertServingRoleIsNotAdmin(states, config);
  const changed: string[] = [];
  for (const s of states) {
    refuseWidening(schema, s);
    if (keyStatisticsShown(s)) await hideKeyStatistics(client, schema, s);
    if (tableIsProtected(s, config)) continue;
    await protectTable(client, schema, s, config);
    changed.push(s.table);
  }
  await grantServingRole(client, schema, tables, config);
  const secured = await closeSideDoors(client, schema, config);
  return { tables: states.filter((s) => !s.partition).map(({ table, column }) => ({ table, column })), changed, secured };
}

/** Kept for callers that only need the tables protected. */
export async function applyRlsPolicies(client: Queryable, schema: string, config: RlsConfig): Promise<ScopedTable[]> {
  return (await repairRlsPolicies(client, schema, config)).tables;
}

/**
 * Under row-level security the planner still uses a column's statistics for leakproof operators
 * (uuid and bigint equality are), so EXPLAIN's row estimates would tell a tenant which other keys
 * exist and how many rows they have. The key column keeps no per-value statistics; the planner
 * falls back to its default selectivity for `key = value`, which is fine for a pool of tenants.
 */
async function hideKeyStatistics(client: Queryable, schema: string, s: TableRlsState) {
  await client.query(`alter table ${qualified(schema, s.table)} alter column ${ident(s.column)} set statistics 0`);
}

/** Only an owner may ALTER a table (and a failed statement would abort the migration's transaction): another owner's is left to the audit. */
function keyStatisticsShown(s: TableRlsState): boolean {
  return s.stattarget !== 0 && s.owner === s.admin;
}

async function protectTable(client: Queryable, schema: string, s: TableRlsState, config: RlsConfig) {
  const t = qualified(schema, s.table);
  const expr = policyExpression(s.column, config);
  try {
    await client.query(`alter table ${t} enable row level security`);
    await client.query(`alter table ${t} ${s.owner === s.admin ? 'no force' : 'force'} row level security`);
    await client.query(`drop policy if exists ${ident(POLICY_NAME)} on ${t}`);
    await client.query(`create policy ${ident(POLICY_NAME)} on ${t} as permissive for all to public using (${expr}) with check (${expr})`);
    await client.query(`drop policy if exists ${ident(ADMIN_POLICY_NAME)} on ${t}`);
    await client.query(
      `create policy ${ident(ADMIN_POLICY_NAME)} on ${t} as permissive for all to ${ident(s.admin)} using (true) with check (true)`,
    );
  } catch (err) {
    if ((err as { code?: string }).code === '42501') {
      throw new TenantctlError(
        'RLS_UNSAFE',
        `table ${schema}.${s.table} is owned by role ${s.owner}; tenantctl's role ${s.admin} cannot manage its row-level security`,
        `make ${s.admin} its owner (alter table ${t} owner to ${ident(s.admin)}) or a member of ${s.owner}, then run migrate up again`,
      );
    }
    throw err;
  }
}

function assertServingRoleIsNotAdmin(states: TableRlsState[], config: RlsConfig): void {
  const admin = states[0]?.admin;
  if (admin !== undefined && admin === config.servingRole.name) {
    throw new TenantctlError(
      'RLS_UNSAFE',
      `the serving role ${admin} is the role tenantctl connects as: tenantctl's role sees every tenant's rows`,
      'give servingRole.name a role of its own (tenantctl creates it) and keep the shard url on the admin role',
    );
  }
}

function refuseWidening(schema: string, s: TableRlsState): void {
  if (s.widening.length === 0) return;
  throw new TenantctlError(
    'RLS_UNSAFE',
    `permissive polic${s.widening.length > 1 ? 'ies' : 'y'} ${s.widening.join(', ')} on ${schema}.${s.table} would let the serving role past ${POLICY_NAME}`,
    `create ${s.widening.length > 1 ? 'them' : 'it'} AS RESTRICTIVE (restrictive policies narrow, permissive ones widen) or drop ${s.widening.length > 1 ? 'them' : 'it'} in a migration`,
  );
}

/**
 * True when some tenant-scoped table is not in the managed state, or a side door is open, so
 * repairRlsPolicies has work to do.
 */
export async function rlsNeedsApply(client: Queryable, schema: string, config: RlsConfig): Promise<boolean> {
  const states = await rlsState(client, schema, config);
  if (states.some((s) => !tableIsProtected(s, config) || s.widening.length > 0 || keyStatisticsShown(s))) return true;
  const tables = await schemaTables(client, schema, config);
  if (sharingProblems(schema, tables, config).length > 0) return true;
  if ((await writableReadOnlyTables(client, schema, tables, config)).length > 0) return true;
  return (await findSideDoors(client, schema, config)).length > 0;
}

/** RLS enabled, forced exactly when someone else owns the table, and both policies as tenantctl writes them. */
export function tableIsProtected(s: TableRlsState, config: Pick<Config, 'tenantKey' | 'rls'>): boolean {
  return (
    s.enabled &&
    s.forced === (s.owner !== s.admin) &&
    s.policy !== null &&
    s.check === s.policy &&
    sameRoles(s.policyRoles, ['public']) &&
    policyMatches(s.policy, s.column, config) &&
    s.adminPolicy === 'true' &&
    s.adminCheck === 'true' &&
    sameRoles(s.adminRoles, [s.admin])
  );
}

function sameRoles(actual: string[] | null, wanted: string[]): boolean {
  return actual !== null && actual.length === wanted.length && actual.every((r, i) => r === wanted[i]);
}

/** Loose comparison of PostgreSQL's rendering of a policy with the one tenantctl writes. */
function policyMatches(rendered: string, column: string, config: Pick<Config, 'tenantKey' | 'rls'>): boolean {
  const norm = (s: string) => s.replace(/[\s()"]/g, '').toLowerCase();
  const r = norm(rendered);
  return (
    r.startsWith(`${norm(column)}=`) &&
    r.includes(norm(`current_setting('${config.rls.setting}'`)) &&
    r.includes('nullif') &&
    // A text key needs no cast, and PostgreSQL prints none.
    (config.tenantKey.type === 'text' || r.endsWith(`::${config.tenantKey.type}`))
  );
}

export interface ServingRoleState {
  created: boolean;
  /** The role existed already with SUPERUSER or BYPASSRLS: RLS does not hold for it. */
  bypassesRls: boolean;
}

/**
 * Create the serving role on this shard if missing: LOGIN, NOSUPERUSER NOBYPASSRLS NOCREATEDB
 * NOCREATEROLE, with servingRole.password and servingRole.connectionLimit when set. An existing
 * role gets the configured connection limit when it has another (the config is the truth; a
 * tenant cannot change it through its own session, only tenantctl or a superuser can); its
 * password is left alone (audit's role.serving-password checks it). Roles are cluster-wide, so
 * call it once per shard; it is idempotent and tolerates a concurrent creation. Run it outside a
 * transaction (a lost race is an error PostgreSQL reports, caught here, which would abort one).
 */
export async function ensureServingRole(client: Queryable, config: Pick<Config, 'servingRole'>): Promise<ServingRoleState> {
  const name = config.servingRole.name;
  const limit = config.servingRole.connectionLimit;
  const existing = await client.query<{ rolsuper: boolean; rolbypassrls: boolean; rolconnlimit: number }>(
    'select rolsuper, rolbypassrls, rolconnlimit from pg_roles where rolname = $1',
    [name],
  );
  if (existing.rows[0]) {
    const r = existing.rows[0];
    if (limit !== undefined && r.rolconnlimit !== limit) await setServingConnectionLimit(client, config);
    return { created: false, bypassesRls: r.rolsuper || r.rolbypassrls };
  }
  const password = config.servingRole.password;
  try {
    await client.query(
      `create role ${ident(name)} login nosuperuser nobypassrls nocreatedb nocreaterole` +
        (limit !== undefined ? ` connection limit ${limit}` : '') +
        // Its verifier, never the plain text: a statement can end up in the server's log.
        (password ? ` password ${literal(scramVerifier(password))}` : ''),
    );
    return { created: true, bypassesRls: false };
  } catch (err) {
    // Another process created it between our check and our create.
    if (isAlreadyExists(err)) return { created: false, bypassesRls: false };
    throw err;
  }
}

/**
 * Whether ensureServingRole has work on this shard: the role missing, or its connection limit not
 * servingRole.connectionLimit (so a pool migration with nothing pending still sets it).
 */
export async function servingRoleNeedsApply(client: Queryable, config: Pick<Config, 'servingRole'>): Promise<boolean> {
  const { rows } = await client.query<{ limit: number }>('select rolconnlimit as limit from pg_roles where rolname = $1', [
    config.servingRole.name,
  ]);
  if (!rows[0]) return true;
  return config.servingRole.connectionLimit !== undefined && rows[0].limit !== config.servingRole.connectionLimit;
}

/** `alter role <serving> connection limit <servingRole.connectionLimit>` (a CREATEROLE role may: the serving role is NOSUPERUSER). */
export async function setServingConnectionLimit(client: Queryable, config: Pick<Config, 'servingRole'>): Promise<void> {
  const limit = config.servingRole.connectionLimit;
  if (limit === undefined) throw new Error('servingRole.connectionLimit is not set in the config: nothing to set the serving role to');
  await client.query(`alter role ${ident(config.servingRole.name)} connection limit ${limit}`);
}
