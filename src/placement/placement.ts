import type { Model } from '../config/types.js';
import { tenantRoleName, type Placement } from './naming.js';
import { keyCondition } from './key-filter.js';

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
  /**
   * How a move blocks the tenant's writes: `advisory` (restrictive policies waiting on a session
   * lock, src/placement/pool/fence.ts: the tables are shared, so they cannot be fenced whole) or
   * `trigger` (statement triggers on every table of the placement, src/placement/table-fence.ts).
   */
  writeFence: 'advisory' | 'trigger';
}

export const MODEL_TRAITS: Record<Model, ModelTraits> = {
  pool: { ownRole: false, ownDatabase: false, sharedTables: true, writeFence: 'advisory' },
  schema: { ownRole: true, ownDatabase: false, sharedTables: false, writeFence: 'trigger' },
  database: { ownRole: true, ownDatabase: true, sharedTables: false, writeFence: 'trigger' },
};

/** The boolean traits (what `modelsWith` can ask). */
type BooleanTrait = { [K in keyof ModelTraits]: ModelTraits[K] extends boolean ? K : never }[keyof ModelTraits];

/** The models that have a trait, e.g. for a catalog query: `modelsWith('ownRole')` → ['schema', 'database']. */
export function modelsWith(trait: BooleanTrait): Model[] {
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

/**
 * The database that is the tenant's alone (made and dropped with it), or null when its model
 * puts it in a database other tenants share. The audit maps databases to their owners by it.
 *
 * @example
 *   tenantDatabase({ model: 'database', database_name: 't_acme' }) // 't_acme'
 *   tenantDatabase({ model: 'schema', database_name: 'tenant_schemas' }) // null
 */
export function tenantDatabase(t: { model: Model; database_name: string }): string | null {
  return MODEL_TRAITS[t.model].ownDatabase ? t.database_name : null;
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

/**
 * How a placement sits in its database, from its traits: `shared-tables` (the tenant's rows
 * among other tenants' rows), `shared-database` (a schema of its own beside other tenants'
 * schemas), `own-database`. The audit plans its units and picks its check families by it.
 *
 * @example
 *   shapeOf('schema') // 'shared-database'
 */
export type PlacementShape = 'shared-tables' | 'shared-database' | 'own-database';

export function shapeOf(model: Model): PlacementShape {
  const t = MODEL_TRAITS[model];
  if (t.sharedTables) return 'shared-tables';
  return t.ownDatabase ? 'own-database' : 'shared-database';
}

/**
 * Rows grouped by the shape of their placement (every shape present, maybe empty): the audit
 * plans one kind of unit per shape and picks its check families by the unit, never by the model.
 */
export function byShape<T extends { model: Model }>(rows: T[]): Record<PlacementShape, T[]> {
  const out: Record<PlacementShape, T[]> = { 'shared-tables': [], 'shared-database': [], 'own-database': [] };
  for (const r of rows) out[shapeOf(r.model)].push(r);
  return out;
}

/**
 * The WHERE clause (with a leading space) that selects the tenant's rows of one of its scoped
 * tables, or '' when the placement is all the tenant's. COPY takes no parameters, so the key is
 * a quoted literal cast to the key type (a malformed key fails the cast, never the quoting).
 *
 * @example
 *   scopeWhere({ model: 'pool', key: '42' }, 'tenant_id', 'bigint') // " where \"tenant_id\" = '42'::bigint"
 *   scopeWhere({ model: 'schema', key: '42' }, 'tenant_id', 'bigint') // ''
 */
export function scopeWhere(scope: { model: Model; key: string }, keyColumn: string, keyType: string): string {
  if (!MODEL_TRAITS[scope.model].sharedTables) return '';
  return ` where ${keyCondition(keyColumn, keyType, scope.key)}`;
}

/**
 * A copy from one model to another writes the tenant's key into every key column: rows landing
 * among other tenants' rows must carry the key their scope selects by, while rows of a placement
 * of the tenant's own are kept as they are.
 */
export function needsKeyRewrite(from: Model, to: Model): boolean {
  return MODEL_TRAITS[to].sharedTables && !MODEL_TRAITS[from].sharedTables;
}

/**
 * What `pg_dump` takes of a placement for a full-fidelity backup: the tenant's own database, or
 * its own schema in a shared database; null for a tenant in shared tables (pg_dump cannot select
 * rows by key: its rows are only in the COPY data).
 *
 * @example
 *   pgDumpTarget({ model: 'schema', database: 'tenant_schemas', schema: 't_acme' }) // { database: 'tenant_schemas', schema: 't_acme' }
 */
export function pgDumpTarget(p: { model: Model; database: string; schema: string }): { database: string; schema?: string } | null {
  const shape = shapeOf(p.model);
  if (shape === 'shared-tables') return null;
  return shape === 'own-database' ? { database: p.database } : { database: p.database, schema: p.schema };
}

/**
 * Where a fresh copy of the tenant's placement goes beside the live one (restore --replace loads
 * it there and switches the catalog at the end): its own schema or database under a suffixed
 * name. Null for a tenant in shared tables, whose rows are swapped in place.
 *
 * @example
 *   placementBeside({ model: 'database', database_name: 't_acme', schema_name: 'app' }, '__r1a2b3c')
 *   // { database_name: 't_acme__r1a2b3c', schema_name: 'app' }
 */
export function placementBeside(
  t: { model: Model; database_name: string; schema_name: string },
  suffix: string,
): { database_name: string; schema_name: string } | null {
  switch (shapeOf(t.model)) {
    case 'shared-tables':
      return null;
    case 'shared-database':
      return { database_name: t.database_name, schema_name: `${t.schema_name}${suffix}`.slice(0, 63) };
    case 'own-database':
      return { database_name: `${t.database_name}${suffix}`.slice(0, 63), schema_name: t.schema_name };
  }
}

/**
 * Whether the tenant's own role at `a` is also its role at `b`: roles are cluster-wide, so two
 * placements of a model with a role of its own on one shard share it (a schema ↔ database move
 * within a shard keeps it; removing one end must not drop it).
 */
export function roleCarriesOver(a: { model: Model; shard: string }, b: { shard: string }): boolean {
  return MODEL_TRAITS[a.model].ownRole && a.shard === b.shard;
}

/**
 * A placement made outside any transaction (its own database) gets a fresh name per attempt, so
 * a killed attempt leaves nothing in the next one's way; other placements keep their names.
 *
 * @example
 *   perAttempt({ model: 'database', database: 't_acme', … }, '__r1a2b3c') // database 't_acme__r1a2b3c'
 */
export function perAttempt<P extends { model: Model; database: string }>(p: P, suffix: string): P {
  return MODEL_TRAITS[p.model].ownDatabase ? { ...p, database: `${p.database}${suffix}` } : p;
}

/** `us1/t_acme` for a database of its own, `us1/tenant_schemas/t_acme` otherwise: where the tenant is, in messages. */
export function placeLabel(p: { model: Model; shard: string; database_name: string; schema_name: string }): string {
  return `${p.shard}/${p.database_name}${MODEL_TRAITS[p.model].ownDatabase ? '' : `/${p.schema_name}`}`;
}

/**
 * The placement of a scratch schema tenantctl makes in a tenant's database (restore stages a
 * backup there when the pool is at another version): migrated like a placement of one tenant's
 * own (no row-level security hooks), and wholly that tenant's when copied.
 */
export function stagingPlacement(shard: string, database: string, schema: string): Placement {
  return { model: 'schema', shard, database, schema };
}
