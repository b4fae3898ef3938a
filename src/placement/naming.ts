/**
 * Where a tenant's rows live, by model. Names derive from the slug, which is validated, and are
 * still always quoted when they reach SQL.
 *
 * @module
 */
import { TENANT_DATABASE_PREFIX } from '../config/database-names.js';
import type { Model } from '../config/types.js';

/** The schema of the pool database that holds every pool tenant's rows. */
export const POOL_SCHEMA = 'app';
/** The schema inside a database tenant's own database. */
export const DATABASE_SCHEMA = 'app';
/** Schema in every target database holding tenantctl's own bookkeeping (migration records). */
export const META_SCHEMA = 'tenantctl';

/** `acme-corp` → `acme_corp`: hyphens are awkward in identifiers; slugs never contain `_`. */
export function slugIdent(slug: string): string {
  return slug.replace(/-/g, '_');
}

export function tenantSchemaName(slug: string): string {
  return `t_${slugIdent(slug)}`;
}

export function tenantDatabaseName(slug: string): string {
  return `${TENANT_DATABASE_PREFIX}${slugIdent(slug)}`;
}

/** Every tenant's own role starts so (the lock-holder ends of sessions.ts tell them by it). */
export const TENANT_ROLE_PREFIX = 'tenant_';

/** The role a schema or database tenant gets; ask src/placement/placement.ts `tenantRole` outside src/placement/. */
export function tenantRoleName(slug: string): string {
  return `${TENANT_ROLE_PREFIX}${slugIdent(slug)}`;
}

/**
 * Where a tenant's (or a pool's) objects live: the ONE shape for it. Migration targets, the
 * placement of a new tenant and the catalog's recorded placement (src/placement/placement.ts,
 * `placementOf`) are all this.
 */
export interface Placement {
  model: Model;
  shard: string;
  database: string;
  schema: string;
}

export interface ShardDatabases {
  poolDatabase: string;
  tenantDatabase: string;
}

/** `us1/tenant_schemas/t_acme`: the target id in reports and run records. */
export function targetId(p: { shard: string; database: string; schema: string }): string {
  return `${p.shard}/${p.database}/${p.schema}`;
}

/** The target id of a catalog row (its `database_name` and `schema_name`). */
export function rowTargetId(t: { shard: string; database_name: string; schema_name: string }): string {
  return targetId({ shard: t.shard, database: t.database_name, schema: t.schema_name });
}

/** What every per-tenant result row starts with: who, and where it lives (its target id). */
export function tenantResultBase(t: {
  slug: string;
  model: Model;
  region: string;
  shard: string;
  database_name: string;
  schema_name: string;
}) {
  return { tenant: t.slug, model: t.model, region: t.region, shard: t.shard, target: rowTargetId(t) };
}
