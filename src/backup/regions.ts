import { isAbsolute, join, resolve } from 'node:path';
import type { Config } from '../config/types.js';
import { UsageError } from '../errors.js';
import { FsStorage } from './fs-storage.js';
import { S3Storage } from './s3-storage.js';
import type { BackupStorage } from './storage.js';
import type { Compression } from './compression.js';
import { slugOfBackupId } from './storage.js';

/**
 * The backup storage of a region (its `backup.dir` or `backup.s3`), or a usage error when it has
 * none. `area` is a corner of it of its own (`_catalog`: the catalog's backups,
 * src/catalog-backup/): a name no tenant slug can take, so its archives never mix with tenants'.
 */
export function storageFor(config: Config, region: string, area?: '_catalog'): BackupStorage {
  const r = config.regions[region];
  if (!r) throw new UsageError('UNKNOWN_REGION', `unknown region "${region}"`, `use one of: ${Object.keys(config.regions).join(', ')}`);
  if (!r.backup) {
    throw new UsageError(
      'CONFIG_INVALID',
      `region ${region} has no backup storage`,
      `set regions.${region}.backup.dir (a folder) or regions.${region}.backup.s3 (a bucket) in ${config.file}`,
    );
  }
  const s3 = r.backup.s3;
  if (s3) return new S3Storage(area ? { ...s3, prefix: s3.prefix ? `${s3.prefix}/${area}` : area } : s3, region);
  const dir = isAbsolute(r.backup.dir!) ? r.backup.dir! : resolve(config.baseDir, r.backup.dir!);
  return new FsStorage(area ? join(dir, area) : dir, `regions.${region}.backup.dir`);
}

export function encryptsBackups(config: Config, region: string): boolean {
  return Boolean(config.regions[region]?.backup?.encrypt);
}

/** How the region's archives compress their data files (format-2 manifests record it). */
export function backupCompression(config: Config, region: string): Compression {
  return config.regions[region]?.backup?.compression ?? 'brotli';
}

/** Regions that have backup storage. */
export function backupRegions(config: Config): string[] {
  return Object.entries(config.regions)
    .filter(([, r]) => r.backup)
    .map(([name]) => name);
}

/**
 * Find a backup by id in every region's storage (ids carry the slug and the time, so they are
 * unique). A missing one is exit 2 naming where it looked.
 */
export async function findBackup(config: Config, id: string): Promise<{ region: string; storage: BackupStorage }> {
  if (!slugOfBackupId(id)) {
    throw new UsageError(
      'BACKUP_NOT_FOUND',
      `"${id}" is not a backup id`,
      'backup ids look like acme.20261126T225317123Z; see tenantctl backup list',
    );
  }
  for (const region of backupRegions(config)) {
    const storage = storageFor(config, region);
    if (await storage.has(id)) return { region, storage };
  }
  throw new UsageError('BACKUP_NOT_FOUND', `no backup "${id}" in the backup storage of any region`, 'see tenantctl backup list');
}
