import type { Config } from '../config/types.js';
import type { TenantRow } from '../catalog/tables.js';
import { TenantctlError } from '../errors.js';
import { Fleet } from '../fleet/fleet.js';
import { withTenantLock } from '../operations/tenant-lock.js';
import { backupLocked } from '../backup/create.js';
import { storageFor } from '../backup/regions.js';
import { MANIFEST_FILE, type Manifest } from '../backup/manifest.js';
import { human } from './disk.js';
import type { PhaseClock } from './phase-clock.js';
import { scratchUrl } from './recover.js';
import type { RestoreAtDeps } from './restore-at-types.js';

/**
 * Extract the tenant from the scratch cluster (on `port`) with the backup engine, under the
 * tenant's lock: one snapshot, every table in its scope, digested, into the interim archive `id`
 * (recorded by the caller before, so the sweep removes it after a kill). Returns its manifest.
 */
export async function extractFromScratch(
  deps: RestoreAtDeps,
  t: TenantRow,
  port: number,
  id: string,
  clock: PhaseClock,
): Promise<{ manifest: Manifest; rows: number }> {
  const config = scratchConfig(deps.config, t.shard, port, t.region);
  const fleet = new Fleet(config);
  let backup: Awaited<ReturnType<typeof backupLocked>>;
  try {
    backup = await withTenantLock(deps.db, t.slug, { command: deps.command, wait: deps.wait, onWaiting: deps.onWaiting }, () =>
      backupLocked({ ...deps, config, fleet, onProgress: (p) => clock.mark('extract', `${p.rows} rows, ${human(p.bytes)}`) }, t, id),
    );
  } finally {
    await fleet.close();
  }
  if (backup.status !== 'succeeded' || backup.backup !== id)
    throw new TenantctlError(
      'PITR_FAILED',
      `extracting ${t.slug} from the scratch cluster failed: ${backup.error?.message ?? backup.reason ?? ''}`,
    );
  const manifest = JSON.parse(await storageFor(deps.config, t.region).readText(id, MANIFEST_FILE)) as Manifest;
  return { manifest, rows: backup.rows ?? 0 };
}

/**
 * The config with one shard served by the scratch cluster: the backup engine reads the tenant
 * there. The interim archive is read once and removed: not compressed (brotli would cost more
 * time than the disk it saves).
 */
function scratchConfig(config: Config, shard: string, port: number, region: string): Config {
  const r = config.regions[region];
  return {
    ...config,
    regions: r?.backup ? { ...config.regions, [region]: { ...r, backup: { ...r.backup, compression: 'none' } } } : config.regions,
    shards: config.shards.map((s) => (s.name === shard ? { ...s, url: scratchUrl(s.url, port) } : s)),
  };
}
