import { createHash } from 'node:crypto';
import { sql } from 'kysely';
import type { Config } from '../config/types.js';
import type { CatalogDb } from '../catalog/open.js';
import { LATEST_CATALOG_MIGRATION } from '../catalog/migrations.js';
import { UsageError } from '../errors.js';
import { toolVersion } from '../backup/manifest.js';
import { backupRegions, storageFor } from '../backup/regions.js';
import { newBackupId, type ArchiveWriter } from '../backup/storage.js';
import {
  CATALOG_BACKUP_FORMAT,
  CATALOG_FILE,
  CATALOG_MANIFEST,
  CATALOG_SLUG,
  CATALOG_TABLES,
  KEYS_FILE,
  type CatalogManifest,
} from './format.js';

export interface CatalogBackupResult {
  backup: string;
  region: string;
  storage: string;
  rows: CatalogManifest['rows'];
}

/** The region whose storage keeps the catalog's backups: the one asked for, else the default region, else the first with storage. */
export function catalogBackupRegion(config: Config, region?: string): string {
  const regions = backupRegions(config);
  if (region) {
    storageFor(config, region); // unknown region, or one without storage: exit 2 naming the fix
    return region;
  }
  if (regions.includes(config.defaultRegion)) return config.defaultRegion;
  if (regions.length) return regions[0];
  throw new UsageError(
    'CONFIG_INVALID',
    'no region has backup storage to keep the catalog backup in',
    `set regions.<region>.backup.dir or regions.<region>.backup.s3 in ${config.file}`,
  );
}

/**
 * `catalog backup`: every row of the catalog, read in one REPEATABLE READ snapshot, written to
 * the region's backup storage (directory or bucket) and published by its manifest, last.
 */
export async function backupCatalog(config: Config, db: CatalogDb, o: { region?: string } = {}): Promise<CatalogBackupResult> {
  const region = catalogBackupRegion(config, o.region);
  const storage = storageFor(config, region, '_catalog');
  const id = newBackupId(CATALOG_SLUG);
  const snapshot = await db
    .transaction()
    .setIsolationLevel('repeatable read')
    .execute(async (trx) => {
      const tables: Record<string, string> = {};
      const rows: Record<string, number> = {};
      for (const t of [...CATALOG_TABLES, 'backup_keys'] as const) {
        const order = t === 'backup_keys' ? 'created_at, key_id' : t === 'migrate_targets' ? 'run_id, position' : 'id';
        const r = await sql<{
          j: string;
          n: number;
        }>`select coalesce(jsonb_agg(to_jsonb(x) order by ${sql.raw(order)}), '[]'::jsonb)::text as j,
            count(*)::int as n from ${sql.table(t)} x`.execute(trx);
        tables[t] = r.rows[0].j;
        rows[t] = r.rows[0].n;
      }
      // The last bigint key handed out: a restore goes on past it, so a deleted tenant's key
      // (its pool still refuses that key's writes) is never a new tenant's.
      const seq = await sql<{ v: string | null }>`select case when is_called then last_value::text end as v from tenant_key_seq`.execute(
        trx,
      );
      return { tables, rows: rows as CatalogManifest['rows'], keySequence: seq.rows[0]?.v ?? null };
    });
  const catalogText = `{"format":${CATALOG_BACKUP_FORMAT},"keySequence":${JSON.stringify(snapshot.keySequence)},"tables":{${CATALOG_TABLES.map((t) => `${JSON.stringify(t)}:${snapshot.tables[t]}`).join(',')}}}\n`;
  const manifest: CatalogManifest = {
    kind: 'tenantctl catalog backup',
    format: CATALOG_BACKUP_FORMAT,
    id,
    createdAt: new Date().toISOString(),
    tool: { name: 'tenantctl', version: toolVersion() },
    catalogMigration: LATEST_CATALOG_MIGRATION,
    rows: snapshot.rows,
    catalog: { bytes: Buffer.byteLength(catalogText), sha256: createHash('sha256').update(catalogText).digest('hex') },
  };
  let writer: ArchiveWriter | undefined;
  try {
    writer = await storage.begin(id);
    await writer.writeText(CATALOG_FILE, catalogText);
    await writer.writeText(KEYS_FILE, `{"keys":${snapshot.tables.backup_keys}}\n`);
    await writer.writeText(CATALOG_MANIFEST, `${JSON.stringify(manifest, null, 2)}\n`);
    await writer.commit();
  } catch (err) {
    await writer?.abort().catch(() => undefined);
    throw err;
  }
  return { backup: id, region, storage: storage.location, rows: manifest.rows };
}
