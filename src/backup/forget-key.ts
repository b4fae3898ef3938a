import type { Config } from '../config/types.js';
import type { CatalogDb } from '../catalog/open.js';
import { ARCHIVE_KEY_FILE } from './archive-key.js';
import { MANIFEST_FILE } from './manifest.js';
import type { BackupStorage } from './storage.js';
import { forgetKeys } from './keys.js';
import { backupRegions, storageFor } from './regions.js';
import { scrubCatalogBackups } from '../catalog-backup/scrub-keys.js';

export interface ForgetResult {
  /** Live keys destroyed in the catalog. */
  keysDestroyed: number;
  /** Archives of the tenant whose carried copy of a data key was erased. */
  archiveCopiesErased: number;
  /** Catalog backups whose copy of the tenant's keys was erased. */
  catalogBackupsScrubbed: number;
  /** Archives of the tenant written without encryption (before its region encrypted): no key erases them; they stay readable. */
  plainArchives: string[];
}

/**
 * `backup forget-key`: crypto-shredding of every archive of one tenant. A data key exists, wrapped
 * by the master key, in exactly three kinds of place, and this erases all of them:
 *  1. the catalog's `backup_keys` row (set to null, destroyed_at kept);
 *  2. the `data-key.json` every encrypted archive of the tenant carries (format 5), in every
 *     region's backup storage: the file is deleted, the ciphertext stays with no key;
 *  3. the `keys.json` of every catalog backup, in every region's storage: the tenant's entries
 *     rewritten as destroyed, so a catalog restore brings back the fact, not the key.
 * The catalog goes first, so nothing can copy the key again while the rest is erased; the rest
 * is idempotent, so a run cut short (an object store down) is finished by running it again.
 * Called under the tenant's lock: no backup of it is writing a new copy meanwhile.
 */
export async function forgetTenantKeys(config: Config, db: CatalogDb, slug: string): Promise<ForgetResult> {
  const keysDestroyed = await forgetKeys(db, slug);
  let archiveCopiesErased = 0;
  const plainArchives: string[] = [];
  for (const region of backupRegions(config)) {
    const storage = storageFor(config, region);
    for (const id of await storage.list(slug)) {
      if ((await storage.size(id, ARCHIVE_KEY_FILE)) === null) {
        if (await isPlain(storage, id)) plainArchives.push(id);
        continue;
      }
      await storage.removeFile(id, ARCHIVE_KEY_FILE);
      archiveCopiesErased++;
    }
    for (const p of await storage.partials(slug)) {
      // A killed backup's leftovers may carry a copy too: they are never restorable, so they go whole.
      await storage.removePartials(slug, [p]);
    }
  }
  const catalogBackupsScrubbed = await scrubCatalogBackups(config, slug);
  return { keysDestroyed, archiveCopiesErased, catalogBackupsScrubbed, plainArchives: plainArchives.sort() };
}

/** An archive whose manifest names no encryption (an unreadable manifest is not said to be plain). */
async function isPlain(storage: BackupStorage, id: string): Promise<boolean> {
  try {
    return !(JSON.parse(await storage.readText(id, MANIFEST_FILE)) as { encryption?: unknown }).encryption;
  } catch {
    return false;
  }
}
