import type { CatalogDb } from '../../catalog/open.js';

/** The `running` records of one kind or several (of one tenant, or all), oldest first. */
export function runningRecords(db: CatalogDb, kind: string | readonly string[], slug?: string) {
  let q = db
    .selectFrom('operations')
    .select(['id', 'kind', 'tenant_slug', 'args', 'progress'])
    .where('kind', 'in', typeof kind === 'string' ? [kind] : [...kind])
    .where('status', '=', 'running');
  if (slug) q = q.where('tenant_slug', '=', slug);
  return q.orderBy('id').execute();
}
