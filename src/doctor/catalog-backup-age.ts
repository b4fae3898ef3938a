import type { Config } from '../config/types.js';
import { backupRegions } from '../backup/regions.js';
import { catalogBackupTime, listCatalogBackups } from '../catalog-backup/find.js';
import { errorMessage } from '../errors.js';
import { redactText } from '../config/redact.js';
import type { Check } from './types.js';

/** A catalog backup older than this is worth a warning: the control plane would lose a day. */
export const CATALOG_BACKUP_MAX_AGE_MS = 24 * 60 * 60 * 1000;

/**
 * Whether the catalog has a recent backup (`tenantctl catalog backup`) in any region's storage.
 * A warning, not a failure: the fleet works without one, but losing the catalog would lose where
 * every tenant lives.
 */
export async function catalogBackupCheck(config: Config, now = Date.now()): Promise<Check> {
  const check = 'catalog backup';
  if (backupRegions(config).length === 0)
    return { check, ok: true, warning: true, detail: 'no region has backup storage, so the catalog cannot be backed up' };
  try {
    const newest = (await listCatalogBackups(config)).at(-1);
    if (!newest)
      return {
        check,
        ok: true,
        warning: true,
        detail: 'the catalog has never been backed up: run tenantctl catalog backup (daily, from cron)',
      };
    const age = now - catalogBackupTime(newest.id).getTime();
    const hours = (age / 3_600_000).toFixed(1);
    if (age > CATALOG_BACKUP_MAX_AGE_MS)
      return {
        check,
        ok: true,
        warning: true,
        detail: `the newest catalog backup, ${newest.id}, is ${hours} hours old: run tenantctl catalog backup`,
      };
    return { check, ok: true, detail: `${newest.id} (${hours} hours old) in ${newest.storage.location}` };
  } catch (err) {
    return { check, ok: true, warning: true, detail: `could not list the catalog backups: ${redactText(errorMessage(err))}` };
  }
}
