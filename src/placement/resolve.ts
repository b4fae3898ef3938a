import type { TenantRow } from '../catalog/tables.js';
import type { Config } from '../config/types.js';
import { redactUrl } from '../config/redact.js';
import { databaseUrl, shardEndpoint } from '../fleet/connection-url.js';
import { rowTargetId, tenantRoleName } from './naming.js';
import { sessionOptions } from '../limits/settings.js';
import { literal } from '../sql.js';

export interface Resolved {
  tenant: string;
  status: string;
  model: string;
  region: string;
  shard: string;
  host: string;
  port: number;
  database: string;
  schema: string;
  /** The role the application connects as: the serving role (pool) or the tenant's own role. */
  role: string;
  target: string;
  /** What the application connects with (password redacted; tenant roles have none). */
  url: string;
  /** How the application scopes to the tenant there. */
  scope: string;
  /** Pool: the setting to set on every request (transaction), and its value. */
  setting?: { name: string; value: string };
  /** Only with --admin: tenantctl's own shard URL for the tenant's database, password redacted. */
  adminUrl?: string;
  /** Where the password comes from, or that there is none yet and what to run (credentialsNote). */
  credentials?: string;
}

/** The names an application connects with: database, schema and role (host and port aside). */
export interface ApplicationNames {
  database: string;
  schema: string;
  role: string;
}

/**
 * What the tenant's application connects to at a placement: the serving role (pool) or the
 * tenant's own role, with the placement's database and schema.
 *
 * @example
 *   applicationNames(config, 'acme', { model: 'schema', database: 'tenant_schemas', schema: 't_acme' }).role // 'tenant_acme'
 */
export function applicationNames(
  config: Pick<Config, 'servingRole'>,
  slug: string,
  p: { model: string; database: string; schema: string },
): ApplicationNames {
  return { database: p.database, schema: p.schema, role: p.model === 'pool' ? config.servingRole.name : tenantRoleName(slug) };
}

/**
 * A value inside libpq's `options`, which splits its arguments at white space: a backslash keeps
 * a space (or a backslash) in the value, so a text key `Acme Corp` stays one setting.
 */
function optionValue(v: string): string {
  return v.replace(/[\\\s]/g, (ch) => `\\${ch}`);
}

/**
 * Where a tenant lives and what its application connects with, from the catalog and the config.
 * Never tenantctl's own (admin) role unless asked: a superuser or table owner skips row-level
 * security, so handing its URL to an application would show it every tenant.
 *
 * @example
 *   resolveTenant(config, poolRow).url
 *   // 'postgres://app_user:***@127.0.0.1:55431/tenant_pool?options=-c%20app.tenant_id%3D4f0c…'
 *   resolveTenant(config, schemaRow, { admin: true }).adminUrl
 *   // 'postgres://tenantctl:***@127.0.0.1:55431/tenant_schemas'
 */
export function resolveTenant(config: Config, t: TenantRow, opts: { admin?: boolean } = {}): Resolved {
  const shard = config.shards.find((s) => s.name === t.shard);
  if (!shard) throw new Error(`tenant ${t.slug} is on shard ${t.shard}, which is not in the config`);
  const ep = shardEndpoint(shard);
  const base = new URL(databaseUrl(shard.url, t.database_name));
  base.search = '';
  const pool = t.model === 'pool';
  const { role } = applicationNames(config, t.slug, { model: t.model, database: t.database_name, schema: t.schema_name });
  const app = new URL(base.toString());
  app.username = encodeURIComponent(role);
  // The serving role's password is in the config, a tenant role's is printed once by `tenant
  // credentials`: either way the URL shows *** where it goes (nothing when none is known).
  app.password = pool ? (config.servingRole.password ? '***' : '') : '***';
  // libpq's `options` sets search_path (every model: unqualified queries work as printed) and,
  // for the pool, the tenant setting, for the whole connection: right for one tenant per
  // connection; a shared pool sets the setting per transaction instead. Tenant roles also have
  // search_path set on the role in their database (roles.ts), for clients that drop `options`.
  // A pool tenant shares the serving role, so its tier's limits (timeouts, work_mem) travel in
  // the connection too, and application_name = its slug lets `usage` count its sessions
  // (issue 19; a tenant role has them on the role, src/placement/limits.ts).
  const limits = pool ? sessionOptions(config.tiers[t.tier] ?? {}) : [];
  const options = [
    ...(pool ? [`-c ${config.rls.setting}=${optionValue(t.key)}`] : []),
    `-c search_path=${optionValue(t.schema_name)}`,
    ...limits,
  ].join(' ');
  // %20, not '+': libpq decodes only percent-escapes in a URI.
  app.search = `?options=${encodeURIComponent(options)}${pool ? `&application_name=${encodeURIComponent(t.slug)}` : ''}`;
  const scope = pool
    ? `per transaction: select set_config(${literal(config.rls.setting)}, ${literal(t.key)}, true) (row-level security on ${t.schema_name}.*)`
    : `search_path = ${t.schema_name} (set in the URL and on the role)`;
  return {
    tenant: t.slug,
    status: t.status,
    model: t.model,
    region: t.region,
    shard: t.shard,
    host: ep.host,
    port: ep.port,
    database: t.database_name,
    schema: t.schema_name,
    role,
    target: rowTargetId(t),
    url: app.toString(),
    scope,
    ...(pool ? { setting: { name: config.rls.setting, value: t.key } } : {}),
    ...(opts.admin ? { adminUrl: redactUrl(base.toString()) } : {}),
  };
}

/** What `credentialsNote` needs to know about the tenant's own role (src/placement/credentials.ts). */
export type RolePassword = { hasPassword: boolean; setAt: string | null } | 'unreachable';

/**
 * Where the application's password comes from, in words for `resolve`: the config's
 * servingRole.password (pool), or the tenant role's, set by `tenant credentials` (or not yet).
 *
 * @example
 *   credentialsNote(config, schemaRow, { hasPassword: false, setAt: null })
 *   // 'no password yet: run tenantctl tenant credentials acme (prints it once)'
 */
export function credentialsNote(config: Config, t: TenantRow, role: RolePassword | null): string {
  if (role === null) {
    return config.servingRole.password
      ? `the serving role's: servingRole.password in the config`
      : `none: set servingRole.password in the config (and on the role ${config.servingRole.name})`;
  }
  if (role === 'unreachable') return `unknown: shard ${t.shard} did not answer`;
  if (!role.hasPassword) return `no password yet: run tenantctl tenant credentials ${t.slug} (prints it once)`;
  const when = role.setAt ? ` at ${role.setAt}` : '';
  return `set${role.setAt ? ` by tenantctl${when}` : ''}; tenantctl does not keep it (tenantctl tenant credentials ${t.slug} --rotate sets a new one)`;
}
