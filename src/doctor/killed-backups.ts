import type { Config } from '../config/types.js';
import type { CatalogDb } from '../catalog/open.js';
import { backupRegions, storageFor } from '../backup/regions.js';
import { slugOfPartial, unlockedTenants } from '../operations/unlocked-tenants.js';
import type { Check } from './types.js';

/**
 * What killed backups left fleet-wide: `.partial` (and `.deleting`) folders in the regions'
 * storage and `running` backup records, of tenants whose lock nobody holds (every backup holds
 * its tenant's lock, so a live one's tenant is locked). The next `backup create` of each tenant
 * removes them (src/backup/backup-leftovers.ts); doctor only lists them.
 */
export async function killedBackupsCheck(config: Config, db: CatalogDb): Promise<Check> {
  const partials: { slug: string; where: string }[] = [];
  for (const region of backupRegions(config)) {
    const storage = storageFor(config, region);
    for (const p of await storage.partials()) partials.push({ slug: slugOfPartial(p), where: `${storage.location}/${p}` });
  }
  const ops = await db
    .selectFrom('operations')
    .select(['id', 'tenant_slug'])
    .where('kind', '=', 'backup')
    .where('status', '=', 'running')
    .execute();
  const slugs = [...new Set([...partials.map((p) => p.slug), ...ops.map((o) => o.tenant_slug ?? '')])];
  const unlocked = await unlockedTenants(db, slugs);
  const found = [
    ...partials.filter((p) => unlocked.has(p.slug)).map((p) => p.where),
    ...ops.filter((o) => unlocked.has(o.tenant_slug ?? '')).map((o) => `operation ${o.id} (backup of ${o.tenant_slug}) still running`),
  ];
  return {
    check: 'killed backups',
    ok: found.length === 0,
    detail: found.length
      ? `${found.join('; ')} (the next tenantctl backup create of each tenant removes and closes them)`
      : 'no partial archives or running backup records without a live backup',
  };
}
