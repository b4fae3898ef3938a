import type { Config } from '../config/types.js';
import { UsageError } from '../errors.js';
import { backupRegions, storageFor } from '../backup/regions.js';
import type { BackupStorage } from '../backup/storage.js';

export interface CatalogBackupRef {
  id: string;
  region: string;
  storage: BackupStorage;
}

/** Every published catalog backup in every region's storage, oldest first (ids sort by time). */
export async function listCatalogBackups(config: Config): Promise<CatalogBackupRef[]> {
  const out: CatalogBackupRef[] = [];
  for (const region of backupRegions(config)) {
    const storage = storageFor(config, region, '_catalog');
    for (const id of await storage.list()) out.push({ id, region, storage });
  }
  return out.sort((a, b) => a.id.localeCompare(b.id));
}

/** The catalog backup `from` names, or the newest of all; exit 2 when there is none. */
export async function findCatalogBackup(config: Config, from?: string): Promise<CatalogBackupRef> {
  const all = await listCatalogBackups(config);
  const found = from ? all.find((b) => b.id === from) : all.at(-1);
  if (found) return found;
  throw new UsageError(
    'BACKUP_NOT_FOUND',
    from ? `no catalog backup "${from}" in the backup storage of any region` : 'no catalog backup in the backup storage of any region',
    from ? `the newest is ${all.at(-1)?.id ?? '(none)'}; run without --from to use it` : 'tenantctl catalog backup makes one',
  );
}

/** When a catalog backup was made, from its id (`catalog.20261126T225317123Z`). */
export function catalogBackupTime(id: string): Date {
  const m = /\.(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})(\d{3})Z/.exec(id);
  if (!m) return new Date(0);
  return new Date(Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6], +m[7]));
}
