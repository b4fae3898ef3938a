import { backupRegions, storageFor } from '../../backup/regions.js';
import { closeKilledOperation } from '../operation-record.js';
import { slugOfPartial } from '../unlocked-tenants.js';
import { runningRecords } from './records.js';
import type { Cleaner, Leftover, SweepDeps } from './types.js';

/**
 * What a killed `backup create` leaves (Ctrl-C, SIGKILL, a lost machine): its hidden
 * `.<id>.partial` folder (or a killed remove's `.<id>.deleting`) in a region's storage, and its
 * `running` record. Every backup holds its tenant's lock, so under that lock both are a dead
 * one's: the folders are removed, the records closed as failed naming what was removed.
 */
export const backupCleaner: Cleaner = {
  kind: 'backup',
  async find(deps, slug) {
    const found: Leftover[] = [];
    for (const region of backupRegions(deps.config)) {
      const storage = storageFor(deps.config, region);
      for (const p of await storage.partials(slug)) {
        found.push({ tenant: slugOfPartial(p), kind: 'backup', what: `${storage.location}/${p} (an unpublished archive)` });
      }
    }
    for (const op of await runningRecords(deps.db, 'backup', slug)) {
      found.push({ tenant: op.tenant_slug ?? '', kind: 'backup', operation: Number(op.id), what: `backup ${op.id} still running` });
    }
    return found;
  },
  async clean(deps: SweepDeps, slug, except) {
    const cleaned: Leftover[] = [];
    for (const region of backupRegions(deps.config)) {
      const storage = storageFor(deps.config, region);
      for (const p of await storage.removePartials(slug)) {
        cleaned.push({ tenant: slug, kind: 'backup', what: `${p} of a killed backup of ${slug} removed from ${storage.location}` });
      }
    }
    for (const op of await runningRecords(deps.db, 'backup', slug)) {
      if (Number(op.id) === except) continue;
      const note = `backup ${op.id} of ${slug} was killed; closed`;
      await closeKilledOperation(deps.db, Number(op.id), note);
      cleaned.push({ tenant: slug, kind: 'backup', operation: Number(op.id), what: note });
    }
    return cleaned;
  },
};
