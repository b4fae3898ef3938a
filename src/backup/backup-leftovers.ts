import type { CatalogDb } from '../catalog/open.js';
import { closeKilledOperation } from '../operations/operation-record.js';
import type { BackupStorage } from './storage.js';

/**
 * What a killed `backup create` of one tenant left (Ctrl-C, SIGKILL, a lost machine): its
 * hidden `.<id>.partial` folder in the region's storage and its `operations` row still
 * `running`. Called under the tenant's lock, before the next backup of that tenant starts: every
 * backup holds that lock, so no backup of it is live and all of these are a killed one's. The
 * partial folders are removed and the records closed as failed, naming what was removed.
 * Returns one line per thing cleaned, for the backup's warnings.
 *
 * @example
 *   await sweepKilledBackups(db, storage, 'acme') // ['backup 41 of acme was killed; .acme.2026….partial removed']
 */
export async function sweepKilledBackups(db: CatalogDb, storage: BackupStorage, slug: string): Promise<string[]> {
  const removed = await storage.removePartials(slug);
  const ops = await db
    .selectFrom('operations')
    .select(['id'])
    .where('kind', '=', 'backup')
    .where('tenant_slug', '=', slug)
    .where('status', '=', 'running')
    .orderBy('id')
    .execute();
  const notes = removed.map((p) => `${p} of a killed backup of ${slug} removed from ${storage.location}`);
  for (const op of ops) {
    const note = `backup ${op.id} of ${slug} was killed; closed`;
    await closeKilledOperation(db, op.id, note);
    notes.push(note);
  }
  return notes;
}
