import type { TenantRow } from './tables.js';

/**
 * Who a tenant is and where it lives, camelCase, the placement spelled out: the part of a catalog
 * row that `tenant show`/`list` print and that a backup manifest carries (so a restore without
 * the catalog knows the tenant). One spelling, so the two never drift apart.
 */
export function tenantIdentity(t: TenantRow) {
  return {
    slug: t.slug,
    key: t.key,
    name: t.name,
    tier: t.tier,
    model: t.model,
    region: t.region,
    shard: t.shard,
    database: t.database_name,
    schema: t.schema_name,
    residency: t.residency,
  };
}
