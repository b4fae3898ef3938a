import { createHash } from 'node:crypto';
import { sql } from 'kysely';
import type { Config } from '../config/types.js';
import type { CatalogDb } from '../catalog/open.js';
import { LATEST_CATALOG_MIGRATION } from '../catalog/migrations.js';
import { UsageError } from '../errors.js';
import { CATALOG_FILE, CATALOG_MANIFEST, CATALOG_TABLES, KEYS_FILE, catalogManifestSchema, type CatalogManifest } from './format.js';
import { findCatalogBackup } from './find.js';

/**
 * The oldest catalog schema whose backups load into this one: no catalog migration since changed
 * the tables a catalog backup holds (CATALOG_TABLES, backup_keys). 0011 added a column to
 * migrate_partitions only, which a backup does not hold (a CI matrix's split, kept 7 days), so
 * yesterday's catalog backup still restores after an upgrade. A migration that changes a backed-up
 * table moves this to itself.
 */
export const OLDEST_RESTORABLE_CATALOG = '0010_migrate_target_last';

/** Refuses (exit 2) a catalog backup whose schema this tenantctl cannot load (see OLDEST_RESTORABLE_CATALOG). */
export function assertLoadableSchema(migration: string, where: string): void {
  if (migration >= OLDEST_RESTORABLE_CATALOG && migration <= LATEST_CATALOG_MIGRATION) return;
  throw new UsageError(
    'BAD_ARCHIVE',
    `${where} is of catalog schema ${migration}; this tenantctl's catalog is ${LATEST_CATALOG_MIGRATION} and loads backups from ${OLDEST_RESTORABLE_CATALOG} on; nothing was changed`,
    migration > LATEST_CATALOG_MIGRATION
      ? 'restore it with the newer tenantctl that made it'
      : 'restore it with the tenantctl version that made it, then upgrade',
  );
}

export interface CatalogRestoreResult {
  backup: string;
  region: string;
  rows: CatalogManifest['rows'];
}

/**
 * `catalog restore`: a catalog backup loaded into an EMPTY catalog (a new or reset catalog
 * database; never merged into one that has rows), in one transaction, ids and sequences as they
 * were. The manifest and catalog.json's SHA-256 are checked first; keys.json as forget-key left
 * it (a forgotten key comes back destroyed).
 */
export async function restoreCatalog(config: Config, db: CatalogDb, o: { from?: string } = {}): Promise<CatalogRestoreResult> {
  const b = await findCatalogBackup(config, o.from);
  const where = `catalog backup ${b.id}`;
  const bad = (why: string) => new UsageError('BAD_ARCHIVE', `${where}: ${why}`, 'nothing was changed; use another catalog backup');
  let manifest: CatalogManifest;
  try {
    manifest = catalogManifestSchema.parse(JSON.parse(await b.storage.readText(b.id, CATALOG_MANIFEST)));
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw bad('manifest.json is missing, not JSON, or not a catalog backup manifest');
  }
  assertLoadableSchema(manifest.catalogMigration, where);
  const text = await b.storage.readText(b.id, CATALOG_FILE);
  if (Buffer.byteLength(text) !== manifest.catalog.bytes || createHash('sha256').update(text).digest('hex') !== manifest.catalog.sha256)
    throw bad('catalog.json does not match its SHA-256 in the manifest (truncated or altered)');
  const catalog = JSON.parse(text) as { tables: Record<string, unknown[]>; keySequence?: string | null };
  let keys: unknown[];
  try {
    keys = (JSON.parse(await b.storage.readText(b.id, KEYS_FILE)) as { keys: unknown[] }).keys;
    if (!Array.isArray(keys)) throw new Error('not a list');
  } catch {
    throw bad('keys.json is missing or damaged');
  }
  await db.transaction().execute(async (trx) => {
    const found: string[] = [];
    for (const t of [...CATALOG_TABLES, 'backup_keys'] as const) {
      const r = await sql<{ n: number }>`select count(*)::int as n from ${sql.table(t)}`.execute(trx);
      if (r.rows[0].n > 0) found.push(`${t} (${r.rows[0].n})`);
    }
    if (found.length)
      throw new UsageError(
        'CATALOG_NOT_EMPTY',
        `the catalog is not empty (${found.join(', ')}); a catalog backup is restored only into an empty catalog, never merged`,
        'point catalog.database at a new database (or reset the lost one), then run catalog restore again',
      );
    const load = async (t: string, rows: unknown[]) => {
      await sql`insert into ${sql.table(t)} select * from jsonb_populate_recordset(null::${sql.table(t)}, ${JSON.stringify(rows)}::jsonb)`.execute(
        trx,
      );
    };
    for (const t of CATALOG_TABLES) await load(t, catalog.tables[t] ?? []);
    await load('backup_keys', keys);
    for (const t of ['tenants', 'events', 'operations'])
      await sql`select setval(pg_get_serial_sequence(${t}, 'id'), coalesce(max(id), 1), max(id) is not null) from ${sql.table(t)}`.execute(
        trx,
      );
    // Bigint keys go on past the last one handed out (backups before the field: past the largest
    // a tenant has), never from 1 again: a deleted tenant's key would go to a new tenant, and an
    // application still set up for the deleted one would read and write the new one's rows.
    await sql`select setval('tenant_key_seq', k, true)
       from (select greatest(${catalog.keySequence ?? null}::bigint,
                             (select max(key::numeric) from tenants where key ~ '^-?[0-9]{1,18}$')::bigint) as k) last
      where k >= 1`.execute(trx);
  });
  return { backup: b.id, region: b.region, rows: manifest.rows };
}
