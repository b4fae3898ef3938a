import type { Model } from '../config/types.js';
import { tenantRoleName, type Placement } from './naming.js';

// The one Placement type (model, shard, database, schema) is declared in naming.ts next to
// placementFor, which makes it; re-exported here with the rest of a placement's vocabulary.
export type { Placement };

/** One tenant's placement: where it lives, its key, and its own role (null: it has none). */
export interface TenantPlacement extends Placement {
  slug: string;
  key: string;
  /** `tenant_<slug>` for models that give a tenant a role of its own; null for pool tenants. */
  role: string | null;
}

/** A tenant as the catalog records it (a TenantRow fits). */
export interface CatalogPlacement {
  slug: string;
  key: string;
  model: Model;
  shard: string;
  database_name: string;
  schema_name: string;
}

/**
 * What each model gives a tenant of its own. Code outside src/placement/ asks these instead of
 * comparing model names, so a fourth model (or a changed one) is a change here only.
 */
export interface ModelTraits {
  /** A login role of its own: suspend turns its LOGIN off; the audit expects it to exist. */
  ownRole: boolean;
  /** A database of its own (created and dropped with the tenant). */
  ownDatabase: boolean;
  /** Other tenants' rows sit in the same tables: the tenant is a key filter, not the whole placement. */
  sharedTables: boolean;
}

export const MODEL_TRAITS: Record<Model, ModelTraits> = {
  pool: { ownRole: false, ownDatabase: false, sharedTables: true },
  schema: { ownRole: true, ownDatabase: false, sharedTables: false },
  database: { ownRole: true, ownDatabase: true, sharedTables: false },
};

/** The models that have a trait, e.g. for a catalog query: `modelsWith('ownRole')` → ['schema', 'database']. */
export function modelsWith(trait: keyof ModelTraits): Model[] {
  return (Object.keys(MODEL_TRAITS) as Model[]).filter((m) => MODEL_TRAITS[m][trait]);
}

/**
 * The tenant's own role, or null when its model gives it none. The one place that names tenant
 * roles from outside src/placement/.
 *
 * @example
 *   tenantRole({ slug: 'acme-corp', model: 'schema' }) // 'tenant_acme_corp'
 *   tenantRole({ slug: 'acme-corp', model: 'pool' })   // null
 */
export function tenantRole(t: { slug: string; model: Model }): string | null {
  return MODEL_TRAITS[t.model].ownRole ? tenantRoleName(t.slug) : null;
}

/** The placement of a catalog row. */
export function placementOf(t: CatalogPlacement): TenantPlacement {
  return {
    model: t.model,
    shard: t.shard,
    database: t.database_name,
    schema: t.schema_name,
    slug: t.slug,
    key: t.key,
    role: tenantRole(t),
  };
}

/**
 * The tenant's scope: what is its own inside its placement. `rows`: the rows whose tenant-key
 * column equals `key` in the placement's scoped tables (shared tables); `placement`: every object
 * of the placement's schema (it is the tenant's alone). Delete, copy, backup and move select
 * by it.
 */
export type TenantScope = { kind: 'rows'; placement: Placement; key: string } | { kind: 'placement'; placement: Placement };

/** The scope of a tenant, from its traits. */
export function scopeOf(t: CatalogPlacement): TenantScope {
  const { model, shard, database, schema } = placementOf(t);
  const placement = { model, shard, database, schema };
  return MODEL_TRAITS[t.model].sharedTables ? { kind: 'rows', placement, key: t.key } : { kind: 'placement', placement };
}
