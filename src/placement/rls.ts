import type pg from 'pg';
import type { Config } from '../config/types.js';
import { ident, isAlreadyExists, literal, qualified } from '../sql.js';

/**
 * Row-level security for pool targets, managed by tenantctl rather than written in migrations:
 * every tenant-scoped table (one with the tenant-key column, or the column named for it in
 * `tenantKey.tables`) gets RLS enabled and forced, and one policy, `tenantctl_isolation`,
 * comparing the key column with the `rls.setting` session setting. The serving role the
 * application connects as gets data privileges and nothing more.
 *
 * @example
 *   await inTransaction(client, () => applyRlsPolicies(client, 'app', config));
 *   // as app_user: select set_config('app.tenant_id', '<key>', false); select * from tasks;
 */
export const POLICY_NAME = 'tenantctl_isolation';

type Queryable = Pick<pg.ClientBase, 'query'>;
type RlsConfig = Pick<Config, 'tenantKey' | 'rls' | 'servingRole'>;

export interface ScopedTable {
  table: string;
  /** The key column of this table: tenantKey.column, or its override. */
  column: string;
}

export interface TableRlsState extends ScopedTable {
  enabled: boolean;
  forced: boolean;
  /** The policy's USING expression as PostgreSQL prints it, if the policy exists. */
  policy: string | null;
  /** Its WITH CHECK expression. */
  check: string | null;
}

/**
 * Tables of `schema` that carry the tenant key: a column named tenantKey.column, or for tables
 * listed in tenantKey.tables the column named there. Partitions are left out (their parent is
 * protected). Sorted by name.
 */
export async function tenantScopedTables(client: Queryable, schema: string, config: RlsConfig): Promise<ScopedTable[]> {
  const states = await rlsState(client, schema, config);
  return states.map(({ table, column }) => ({ table, column }));
}

/** Tenant-scoped tables with their current RLS state (for audit and for deciding to re-apply). */
export async function rlsState(client: Queryable, schema: string, config: RlsConfig): Promise<TableRlsState[]> {
  const res = await client.query<TableRlsState>(
    `select c.relname as table, a.attname as column, c.relrowsecurity as enabled, c.relforcerowsecurity as forced,
            p.policy, p.check
       from pg_class c
       join pg_namespace n on n.oid = c.relnamespace
       join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
       left join lateral (
         select pg_get_expr(polqual, polrelid) as policy, pg_get_expr(polwithcheck, polrelid) as check
           from pg_policy where polrelid = c.oid and polname = $4 and polcmd = '*'
       ) p on true
      where n.nspname = $1
        and c.relkind in ('r', 'p')
        and not c.relispartition
        and a.attname = coalesce($2::jsonb ->> c.relname::text, $3)
      order by c.relname`,
    [schema, JSON.stringify(config.tenantKey.tables ?? {}), config.tenantKey.column, POLICY_NAME],
  );
  return res.rows;
}

/** The policy expression for one key column. */
export function policyExpression(column: string, config: Pick<Config, 'tenantKey' | 'rls'>): string {
  // nullif: after a transaction-local set_config ends, the setting reads '' rather than NULL,
  // and ''::uuid would be an error instead of "no rows".
  return `${ident(column)} = nullif(current_setting(${literal(config.rls.setting)}, true), '')::${config.tenantKey.type}`;
}

/**
 * Enable and force RLS with the tenantctl_isolation policy on every tenant-scoped table of
 * `schema`, and grant the serving role usage of the schema, data privileges on its tables and
 * usage of its sequences. Idempotent; run it inside the caller's transaction so the tables are
 * never seen half protected. The serving role must exist (ensureServingRole). Returns the
 * protected tables.
 */
export async function applyRlsPolicies(client: Queryable, schema: string, config: RlsConfig): Promise<ScopedTable[]> {
  const tables = await tenantScopedTables(client, schema, config);
  for (const t of tables) await protectTable(client, schema, t, config);
  await grantServingRole(client, schema, config);
  return tables;
}

/**
 * Like applyRlsPolicies, but only touches the tables whose RLS state differs from what tenantctl
 * wants (ALTER TABLE and CREATE POLICY take an exclusive lock, so a table already right is left
 * alone). Grants are always re-issued: new tables need them. Run inside the caller's
 * transaction. Returns every tenant-scoped table and the ones it changed.
 */
export async function repairRlsPolicies(
  client: Queryable,
  schema: string,
  config: RlsConfig,
): Promise<{ tables: ScopedTable[]; changed: string[] }> {
  const states = await rlsState(client, schema, config);
  const changed: string[] = [];
  for (const s of states) {
    if (tableIsProtected(s, config)) continue;
    await protectTable(client, schema, s, config);
    changed.push(s.table);
  }
  await grantServingRole(client, schema, config);
  return { tables: states.map(({ table, column }) => ({ table, column })), changed };
}

async function protectTable(client: Queryable, schema: string, { table, column }: ScopedTable, config: RlsConfig) {
  const t = qualified(schema, table);
  const expr = policyExpression(column, config);
  await client.query(`alter table ${t} enable row level security`);
  await client.query(`alter table ${t} force row level security`);
  await client.query(`drop policy if exists ${ident(POLICY_NAME)} on ${t}`);
  await client.query(`create policy ${ident(POLICY_NAME)} on ${t} for all using (${expr}) with check (${expr})`);
}

async function grantServingRole(client: Queryable, schema: string, config: RlsConfig) {
  const role = ident(config.servingRole.name);
  await client.query(`grant usage on schema ${ident(schema)} to ${role}`);
  await client.query(`grant select, insert, update, delete on all tables in schema ${ident(schema)} to ${role}`);
  await client.query(`grant usage on all sequences in schema ${ident(schema)} to ${role}`);
}

/**
 * True when some tenant-scoped table lacks RLS, FORCE or the policy with the expected
 * expression, so applyRlsPolicies has work to do.
 */
export async function rlsNeedsApply(client: Queryable, schema: string, config: RlsConfig): Promise<boolean> {
  const states = await rlsState(client, schema, config);
  if (states.length === 0) return false;
  return states.some((s) => !tableIsProtected(s, config));
}

/** RLS enabled and forced, and the policy present with tenantctl's expression. */
export function tableIsProtected(s: TableRlsState, config: Pick<Config, 'tenantKey' | 'rls'>): boolean {
  return (
    s.enabled && s.forced && s.policy !== null && s.check === s.policy && policyMatches(s.policy, s.column, config)
  );
}

/** Loose comparison of PostgreSQL's rendering of a policy with the one tenantctl writes. */
function policyMatches(rendered: string, column: string, config: Pick<Config, 'tenantKey' | 'rls'>): boolean {
  const norm = (s: string) => s.replace(/[\s()"]/g, '').toLowerCase();
  const r = norm(rendered);
  return (
    r.startsWith(norm(column) + '=') &&
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
 * NOCREATEROLE, with servingRole.password when set. Roles are cluster-wide, so call it once per
 * shard; it is idempotent and tolerates a concurrent creation. Run it outside a transaction
 * (a lost race is an error PostgreSQL reports, caught here, which would abort one).
 */
export async function ensureServingRole(client: Queryable, config: Pick<Config, 'servingRole'>): Promise<ServingRoleState> {
  const name = config.servingRole.name;
  const existing = await client.query<{ rolsuper: boolean; rolbypassrls: boolean }>(
    'select rolsuper, rolbypassrls from pg_roles where rolname = $1',
    [name],
  );
  if (existing.rows[0]) {
    return { created: false, bypassesRls: existing.rows[0].rolsuper || existing.rows[0].rolbypassrls };
  }
  const password = config.servingRole.password;
  try {
    await client.query(
      `create role ${ident(name)} login nosuperuser nobypassrls nocreatedb nocreaterole` +
        (password ? ` password ${literal(password)}` : ''),
    );
    return { created: true, bypassesRls: false };
  } catch (err) {
    // Another process created it between our check and our create.
    if (isAlreadyExists(err)) return { created: false, bypassesRls: false };
    throw err;
  }
}
