import type { Config } from '../config/types.js';
import { listCatalogBackups } from './find.js';
import { KEYS_FILE, type KeyEntry } from './format.js';

/**
 * The catalog backups' part of `backup forget-key` (src/backup/forget-key.ts): in every catalog
 * backup in every region's storage, the tenant's live keys in keys.json are rewritten as
 * destroyed (the file replaced whole). Returns how many backups held a live key of the tenant.
 */
export async function scrubCatalogBackups(config: Config, slug: string): Promise<number> {
  let scrubbed = 0;
  const now = new Date().toISOString();
  for (const b of await listCatalogBackups(config)) {
    const doc = JSON.parse(await b.storage.readText(b.id, KEYS_FILE)) as { keys: KeyEntry[] };
    if (!doc.keys.some((k) => k.slug === slug && k.wrapped !== null)) continue;
    const keys = doc.keys.map((k) => (k.slug === slug && k.wrapped !== null ? { ...k, wrapped: null, destroyed_at: now } : k));
    await b.storage.replaceText(b.id, KEYS_FILE, `${JSON.stringify({ keys })}\n`);
    scrubbed++;
  }
  return scrubbed;
}
