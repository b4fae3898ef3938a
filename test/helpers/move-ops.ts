import type { CatalogDb } from '../../src/catalog/open.js';
import { latestMove } from '../../src/move/record.js';
import { until } from './migrate-env.js';

/** Wait until the tenant's running move has copied a table (the `move-hang-in-copy` fault then holds it). */
export function untilCopying(db: CatalogDb, slug: string, timeoutMs = 20_000) {
  return until(async () => {
    const op = await latestMove(db, slug);
    return op?.status === 'running' && op.progress.lastTable ? op : undefined;
  }, timeoutMs);
}
