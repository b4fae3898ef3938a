import type { Finding, FindingInput, Severity } from './types.js';

/**
 * Every check the audit runs: id, default severity, whether tenantctl fixes it, and what it looks
 * for. Check families create findings through `finding()`, so a check's severity and fixability
 * live here, in one table the README mirrors.
 */
export interface CheckInfo {
  severity: Severity;
  fixable: boolean;
  title: string;
}

export const CHECKS = {
  // pool targets
  'pool.rls-disabled': { severity: 'critical', fixable: true, title: 'tenant-scoped table without row-level security' },
  'pool.rls-not-forced': {
    severity: 'critical',
    fixable: false,
    title: "row-level security enabled but not forced while a role other than tenantctl's owns the table",
  },
  'pool.policies-while-disabled': { severity: 'high', fixable: true, title: 'policies present while row-level security is off' },
  'pool.no-policy': { severity: 'medium', fixable: true, title: 'row-level security on and no policy' },
  'pool.always-true-policy': {
    severity: 'critical',
    fixable: true,
    title: 'a policy that is always true (other than tenantctl_admin to the shard role)',
  },
  'pool.unchecked-writes': { severity: 'critical', fixable: true, title: 'a policy that lets writes through without a check' },
  'pool.policy-without-key': { severity: 'critical', fixable: true, title: 'a permissive policy that does not use the tenant key' },
  'pool.view-owner-rights': {
    severity: 'critical',
    fixable: true,
    title: "view readable by the serving role reading tenant tables with its owner's rights",
  },
  'pool.partition-unprotected': {
    severity: 'critical',
    fixable: true,
    title: 'partition readable directly without row-level security and policies',
  },
  'pool.matview-readable': { severity: 'high', fixable: true, title: 'materialized view or foreign table readable by the serving role' },
  'pool.dangerous-grant': { severity: 'high', fixable: true, title: 'TRUNCATE or REFERENCES granted to the serving role' },
  'pool.keyless-table': {
    severity: 'critical',
    fixable: false,
    title: 'table of the pool schema without the tenant key and not declared shared (tenantKey.shared)',
  },
  'pool.shared-with-key': { severity: 'medium', fixable: false, title: 'table declared shared that carries the tenant key' },
  'pool.shared-writable': { severity: 'high', fixable: true, title: 'shared read-only table the serving role may write' },
  'pool.key-renamed': {
    severity: 'high',
    fixable: false,
    title: "column that references a tenant's key but is not the table's tenant key",
  },
  'pool.exclusion-without-key': { severity: 'medium', fixable: false, title: 'exclusion constraint that leaves out the tenant key' },
  'pool.foreign-permissive-policy': {
    severity: 'critical',
    fixable: true,
    title: "permissive policy other than tenantctl's that reaches the serving role",
  },
  'pool.other-schema-readable': {
    severity: 'high',
    fixable: true,
    title: 'relation outside the pool schema readable by the serving role',
  },
  'pool.large-objects': { severity: 'medium', fixable: false, title: 'large objects readable by the serving role (no row-level security)' },
  'pool.key-statistics': {
    severity: 'low',
    fixable: true,
    title: 'per-value planner statistics on the tenant key (row estimates through EXPLAIN)',
  },
  'pool.unique-without-key': { severity: 'medium', fixable: false, title: 'unique key that leaves out the tenant key' },
  'pool.fk-without-key': { severity: 'medium', fixable: false, title: 'foreign key between tenant tables that leaves out the tenant key' },
  // every model
  'role.serving-member-of-admin': {
    severity: 'critical',
    fixable: true,
    title: "serving role is a member of tenantctl's shard role or of an owner of tenant tables",
  },
  'role.serving-password': {
    severity: 'critical',
    fixable: true,
    title: "serving role refuses servingRole.password (a pool tenant may set the shared role's password: every pool tenant is locked out)",
  },
  'role.serving-connection-limit': {
    severity: 'high',
    fixable: true,
    title:
      "serving role's connection limit is not servingRole.connectionLimit (the pool tenants together may take every connection of the shard)",
  },
  'role.serving-settings': {
    severity: 'high',
    fixable: true,
    title: 'serving role with role-level settings (a pool tenant may set them for every tenant of the pool)',
  },
  'role.oversized-settings': {
    severity: 'medium',
    fixable: true,
    title: 'a tenant or serving role keeping data in a role setting (over 8 kB)',
  },
  'role.limits-differ': {
    severity: 'medium',
    fixable: false,
    title: "tenant role or database whose limits (connection limit, settings) differ from its tier's",
  },
  'role.tenant-owns-elsewhere': {
    severity: 'medium',
    fixable: false,
    title: 'tenant role owning objects outside its placement (another database of the shard)',
  },
  'role.login-while-suspended': {
    severity: 'high',
    fixable: true,
    title: "suspended tenant's role can still log in",
  },
  'role.bypasses-rls': {
    severity: 'critical',
    fixable: false,
    title: 'serving or tenant role is superuser or BYPASSRLS, directly or by membership',
  },
  'function.definer-executable': {
    severity: 'high',
    fixable: true,
    title: 'SECURITY DEFINER function the serving role or PUBLIC can execute',
  },
  'function.definer-search-path': { severity: 'medium', fixable: false, title: 'SECURITY DEFINER function with a mutable search_path' },
  'function.search-path-mutable': { severity: 'low', fixable: true, title: 'function with a search_path taken from its caller' },
  'function.leakproof': { severity: 'medium', fixable: false, title: 'user-defined LEAKPROOF function' },
  // schema tenants
  'schema.public-create': { severity: 'high', fixable: true, title: 'PUBLIC can create in schema public' },
  'schema.cross-tenant-access': {
    severity: 'critical',
    fixable: true,
    title: "a tenant role can use another tenant's schema or read its tables",
  },
  'schema.default-privileges': { severity: 'high', fixable: true, title: 'default privileges granting to PUBLIC or to another tenant' },
  'schema.writable-search-path': { severity: 'high', fixable: false, title: 'search_path includes a schema others can write' },
  'schema.extension-in-tenant-schema': {
    severity: 'medium',
    fixable: false,
    title: "an extension in one tenant's schema of the schema tenants' database, out of the others' reach",
  },
  'schema.large-object-shared': {
    severity: 'high',
    fixable: false,
    title: "a large object in the schema tenants' database granted to PUBLIC or to another tenant's role",
  },
  // schema and database tenants
  'placement.shared-writable': {
    severity: 'high',
    fixable: true,
    title: "a schema or database tenant's copy of a read-only shared table that its role (or another) may write",
  },
  // every model
  'placement.table-outside-schema': {
    severity: 'medium',
    fixable: false,
    title: "a table holding tenants' rows outside the schema tenantctl copies (moves and backups do not carry it)",
  },
  // database tenants
  'database.public-connect': { severity: 'high', fixable: true, title: 'CONNECT granted to PUBLIC on a tenantctl database' },
  'database.control-plane-open': {
    severity: 'high',
    fixable: false,
    title: 'CONNECT to PUBLIC on the catalog database or a maintenance database (postgres, template1)',
  },
  'database.orphan-default-privileges': {
    severity: 'high',
    fixable: false,
    title: 'a default-privileges entry for a schema that no longer exists: pg_dump of the database fails',
  },
  'database.cross-tenant-connect': { severity: 'critical', fixable: true, title: "a tenant role can connect to another tenant's database" },
  // catalog against reality
  'catalog.placement-missing': {
    severity: 'high',
    fixable: false,
    title: 'a tenant whose placement (schema, database or role) is missing',
  },
  'catalog.orphan-placement': {
    severity: 'medium',
    fixable: false,
    title: 'schema or database that looks like a tenant but has no catalog row',
  },
  'catalog.orphan-role': { severity: 'medium', fixable: false, title: 'tenant role with no tenant' },
  'catalog.orphan-pool-rows': { severity: 'medium', fixable: false, title: 'pool rows whose key belongs to no tenant' },
  'catalog.stuck-tenant': { severity: 'medium', fixable: false, title: 'tenant stuck in provisioning, failed or deleting' },
  // tenantctl's own shard role
  'shard-role.privileged': { severity: 'high', fixable: false, title: "tenantctl's shard role is superuser or BYPASSRLS" },
  'shard-role.reach': {
    severity: 'medium',
    fixable: true,
    title: 'view owned by the shard role, running with its rights, readable by the serving role',
  },
  // live probes
  'probe.cross-tenant-read': {
    severity: 'critical',
    fixable: false,
    title: "probe: with tenant A's setting the serving role saw another tenant's rows",
  },
  'probe.no-setting-read': { severity: 'critical', fixable: false, title: 'probe: with no setting the serving role saw rows' },
  'probe.cross-tenant-write': { severity: 'critical', fixable: false, title: "probe: a write with another tenant's key went through" },
  'probe.setting-persists': { severity: 'critical', fixable: false, title: 'probe: the tenant setting survived into the next transaction' },
  'probe.unique-collision': { severity: 'medium', fixable: false, title: "probe: a unique-key collision revealed another tenant's row" },
  'probe.tenant-role-cross-schema': { severity: 'critical', fixable: false, title: "probe: a tenant role read another tenant's schema" },
  'probe.tenant-role-cross-database': {
    severity: 'critical',
    fixable: false,
    title: "probe: a tenant role may connect to another tenant's database",
  },
  'probe.empty-setting-read': {
    severity: 'critical',
    fixable: false,
    title: 'probe: with the setting empty (after a transaction-local set) the serving role saw rows',
  },
  'audit.cannot-verify': {
    severity: 'high',
    fixable: false,
    title: 'an object tenantctl cannot read, so the checks that need it could not run',
  },
  'probe.failed': { severity: 'low', fixable: false, title: 'a probe could not run' },
} as const satisfies Record<string, CheckInfo>;

export type CheckId = keyof typeof CHECKS;

/** A finding of check `id`, its severity and fixability from the registry. */
export function finding(id: CheckId, f: FindingInput): Finding {
  const info: CheckInfo = CHECKS[id];
  return { ...f, check: id, severity: f.severity ?? info.severity, fixable: (f.fixable ?? info.fixable) && f.fix !== null };
}
