import type { CatalogDb } from '../catalog/open.js';
import { UsageError } from '../errors.js';
import type { OpenArchive } from './archive.js';
import { masterKey, unwrapKey } from './crypto.js';
import { dataKeyById } from './keys.js';
import type { ArchiveWriter } from './storage.js';

/**
 * The copy of its data key an encrypted archive carries (format 5): `data-key.json`, the key
 * wrapped by the master key, so the archive can be restored with the master key alone when the
 * catalog is gone. It is a file of its own, outside the manifest and its MAC, so that
 * `backup forget-key` can erase it (src/backup/forget-key.ts) without rewriting anything else:
 * what it leaves is ciphertext with no key anywhere.
 */
export const ARCHIVE_KEY_FILE = 'data-key.json';

export interface ArchiveKeyFile {
  keyId: string;
  slug: string;
  /** base64 of IV ‖ ciphertext ‖ tag under the master key (src/backup/crypto.ts wrapKey). */
  wrapped: string;
}

export async function writeArchiveKey(writer: ArchiveWriter, k: ArchiveKeyFile): Promise<void> {
  await writer.writeText(ARCHIVE_KEY_FILE, `${JSON.stringify(k)}\n`);
}

/**
 * The data key of an encrypted archive. The catalog decides first: a key it has destroyed stays
 * destroyed whatever copy an archive still carries. A key the catalog does not know (it was lost
 * and rebuilt, or restored from a backup older than the key) comes from the archive's own copy.
 */
export async function archiveDataKey(db: CatalogDb, a: OpenArchive): Promise<Buffer | null> {
  const enc = a.manifest.encryption;
  if (!enc) return null;
  const slug = a.manifest.tenant.slug;
  const known = await db.selectFrom('backup_keys').select('key_id').where('key_id', '=', enc.keyId).executeTakeFirst();
  if (known || !enc.keyFile) return dataKeyById(db, enc.keyId, slug);
  let copy: ArchiveKeyFile;
  try {
    copy = JSON.parse(await a.storage.readText(a.id, enc.keyFile)) as ArchiveKeyFile;
  } catch {
    throw new UsageError(
      'BACKUP_KEY',
      `the data key ${enc.keyId} of tenant "${slug}" is not in this catalog, and backup ${a.id} no longer carries its copy (backup forget-key erased it, or the archive is damaged)`,
      'restore the catalog from a catalog backup (tenantctl catalog restore) if the key was not forgotten; otherwise nothing can read this archive',
    );
  }
  if (copy?.keyId !== enc.keyId || typeof copy.wrapped !== 'string')
    throw new UsageError(
      'BAD_ARCHIVE',
      `backup ${a.id}: ${enc.keyFile} is not the copy of data key ${enc.keyId}`,
      'use another backup (tenantctl backup list)',
    );
  // The manifest's MAC, checked by the caller with this key, proves it is the archive's own.
  return unwrapKey(masterKey(), copy.wrapped);
}
