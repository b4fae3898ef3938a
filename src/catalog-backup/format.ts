import * as z from 'zod';

/**
 * A catalog backup: an archive like a tenant's, in the `_catalog` corner of a region's backup
 * storage (src/backup/regions.ts storageFor), id `catalog.<UTC time>`, three files:
 *  - `catalog.json`: every row of tenants, events, operations and migrate_targets, as the catalog
 *    database turns them into JSON (to_jsonb), read back with jsonb_populate_recordset;
 *  - `keys.json`: the backup_keys rows (data keys wrapped by the master key; null once destroyed).
 *    A file of its own, outside the manifest's checksum, because `backup forget-key` rewrites it
 *    (src/catalog-backup/scrub-keys.ts): a catalog restore must never bring a forgotten key back;
 *  - `manifest.json`, written last (what publishes the archive): what it holds and catalog.json's
 *    SHA-256.
 */
export const CATALOG_SLUG = 'catalog';
export const CATALOG_FILE = 'catalog.json';
export const KEYS_FILE = 'keys.json';
export const CATALOG_MANIFEST = 'manifest.json';
export const CATALOG_BACKUP_FORMAT = 1;

/** The tables a catalog backup carries besides the keys, runs before their targets (a migrate_targets row names its run in operations). */
export const CATALOG_TABLES = ['tenants', 'events', 'operations', 'migrate_targets'] as const;
export type CatalogTable = (typeof CATALOG_TABLES)[number];

export const catalogManifestSchema = z.strictObject({
  kind: z.literal('tenantctl catalog backup'),
  format: z.literal(CATALOG_BACKUP_FORMAT),
  id: z.string(),
  createdAt: z.string(),
  tool: z.strictObject({ name: z.literal('tenantctl'), version: z.string() }),
  /** The catalog's own newest migration: a restore needs a catalog of the same shape. */
  catalogMigration: z.string(),
  rows: z.strictObject({
    tenants: z.number().int(),
    events: z.number().int(),
    operations: z.number().int(),
    migrate_targets: z.number().int(),
    backup_keys: z.number().int(),
  }),
  catalog: z.strictObject({ bytes: z.number().int(), sha256: z.string().regex(/^[0-9a-f]{64}$/) }),
});
export type CatalogManifest = z.infer<typeof catalogManifestSchema>;

/** One backup_keys row as a catalog backup holds it. */
export interface KeyEntry {
  key_id: string;
  slug: string;
  wrapped: string | null;
  created_at: string;
  destroyed_at: string | null;
}
