import type { Config } from '../config/types.js';
import { errorMessage } from '../errors.js';
import { MANIFEST_FILE, parseManifest } from './manifest.js';
import { backupRegions, storageFor } from './regions.js';

export interface BackupEntry {
  id: string;
  tenant: string;
  region: string;
  model?: string;
  shard?: string;
  createdAt?: string;
  version?: string | null;
  rows?: number;
  bytes?: number;
  encrypted?: boolean;
  /** The manifest could not be read: why. */
  problem?: string;
}

/**
 * Every complete archive in every region's storage (or one tenant's), oldest first, from the
 * manifests. Half-written archives are never listed (see BackupStorage).
 */
export async function listBackups(config: Config, slug?: string): Promise<BackupEntry[]> {
  const out: BackupEntry[] = [];
  for (const region of backupRegions(config)) {
    const storage = storageFor(config, region);
    for (const id of await storage.list(slug)) {
      const tenant = id.slice(0, id.indexOf('.'));
      try {
        const m = parseManifest(await storage.readText(id, MANIFEST_FILE), `backup ${id}`);
        out.push({
          id,
          tenant,
          region,
          model: m.tenant.model,
          shard: m.tenant.shard,
          createdAt: m.createdAt,
          version: m.migrations.version,
          rows: m.tables.reduce((n, t) => n + t.rows, 0),
          bytes: m.tables.reduce((n, t) => n + t.stored.bytes, 0) + (m.dump?.stored.bytes ?? 0),
          encrypted: Boolean(m.encryption),
        });
      } catch (err) {
        // A folder without its manifest (deleted by hand, a copy cut short): said as such, not as a raw ENOENT with a path.
        const missing = (err as { code?: string }).code === 'ENOENT';
        out.push({
          id,
          tenant,
          region,
          problem: missing ? `${MANIFEST_FILE} is missing: not a whole archive (restore refuses it; remove the folder)` : errorMessage(err),
        });
      }
    }
  }
  return out.sort((a, b) => a.tenant.localeCompare(b.tenant) || a.id.localeCompare(b.id));
}
