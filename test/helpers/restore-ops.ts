import type { CatalogDb } from '../../src/catalog/open.js';
import { until } from './migrate-env.js';

/** The tenant's restore the catalog shows running (a killed one stays so until the next restore sweeps it). */
export function runningRestore(db: CatalogDb, slug: string) {
  return db
    .selectFrom('operations')
    .selectAll()
    .where('kind', '=', 'restore')
    .where('tenant_slug', '=', slug)
    .where('status', '=', 'running')
    .executeTakeFirst();
}

/** Wait until the tenant's running restore reaches one of `phases` (a `restore-hang-*` fault then holds it there). */
export function untilRestorePhase(db: CatalogDb, slug: string, phases: string[], timeoutMs = 60_000) {
  return until(async () => {
    const op = await runningRestore(db, slug);
    return phases.includes((op?.progress as { phase?: string } | undefined)?.phase ?? '') ? op : undefined;
  }, timeoutMs);
}
