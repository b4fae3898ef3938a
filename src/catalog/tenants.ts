import { sql } from 'kysely';
import { UsageError } from '../errors.js';
import type { CatalogDb } from './open.js';
import type { NewTenant, TenantRow, TenantStatus, TenantUpdate } from './tables.js';

/** Selectors shared by list, migrate, backup and audit. Empty means "all". */
export interface TenantSelector {
  tenants?: string[];
  model?: string[];
  region?: string[];
  shard?: string[];
  tier?: string[];
  status?: string[];
}

/**
 * Tenants matching the selectors, in slug order.
 *
 * @example
 *   await selectTenants(db, { region: ['eu-west'], model: ['schema'] });
 */
export async function selectTenants(db: CatalogDb, s: TenantSelector = {}): Promise<TenantRow[]> {
  let q = db.selectFrom('tenants').selectAll();
  if (s.tenants?.length) q = q.where('slug', 'in', s.tenants);
  if (s.model?.length) q = q.where('model', 'in', s.model as TenantRow['model'][]);
  if (s.region?.length) q = q.where('region', 'in', s.region);
  if (s.shard?.length) q = q.where('shard', 'in', s.shard);
  if (s.tier?.length) q = q.where('tier', 'in', s.tier);
  if (s.status?.length) q = q.where('status', 'in', s.status as TenantStatus[]);
  return q.orderBy('slug').execute();
}

export async function findTenant(db: CatalogDb, slug: string): Promise<TenantRow | undefined> {
  return db.selectFrom('tenants').selectAll().where('slug', '=', slug).executeTakeFirst();
}

/** The tenant, or a usage error naming the slug and how to find the right one. */
export async function getTenant(db: CatalogDb, slug: string): Promise<TenantRow> {
  const t = await findTenant(db, slug);
  if (!t) throw new UsageError('TENANT_NOT_FOUND', `no tenant "${slug}"`, 'see tenantctl tenant list');
  return t;
}

export async function insertTenant(db: CatalogDb, t: NewTenant): Promise<TenantRow> {
  return db.insertInto('tenants').values(t).returningAll().executeTakeFirstOrThrow();
}

export async function updateTenant(db: CatalogDb, slug: string, patch: TenantUpdate): Promise<void> {
  await db
    .updateTable('tenants')
    .set({ ...patch, updated_at: new Date() })
    .where('slug', '=', slug)
    .execute();
}

/** Tenants per shard (any status but deleting), for least-loaded placement. */
export async function tenantCountsByShard(db: CatalogDb): Promise<Map<string, number>> {
  const rows = await db
    .selectFrom('tenants')
    .select(['shard', sql<number>`count(*)::int`.as('n')])
    .groupBy('shard')
    .execute();
  return new Map(rows.map((r) => [r.shard, r.n]));
}

export async function nextBigintKey(db: CatalogDb): Promise<string> {
  const r = await sql<{ k: string }>`select nextval('tenant_key_seq')::text as k`.execute(db);
  return r.rows[0].k;
}
