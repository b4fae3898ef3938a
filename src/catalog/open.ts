import { Kysely, Migrator, PostgresDialect } from 'kysely';
import pg from 'pg';
import type { Config } from '../config/types.js';
import { redactText } from '../config/redact.js';
import { EXIT, TenantctlError } from '../errors.js';
import { ident, isAlreadyExists } from '../sql.js';
import { CATALOG_POOL_SIZE, CONNECT_TIMEOUT_MS } from '../config/connection-limits.js';
import { catalogMigrations } from './migrations.js';
import type { CatalogDatabase } from './tables.js';

// Kept importable from here; defined in src/config/connection-limits.ts (no catalog ↔ fleet cycle).
export { CATALOG_POOL_SIZE };

export type CatalogDb = Kysely<CatalogDatabase>;

/**
 * Open the catalog, creating its database and bringing its own schema up to date on first use.
 *
 * @example
 *   const db = await openCatalog(config);
 *   const tenants = await db.selectFrom('tenants').selectAll().execute();
 *   await db.destroy();
 */
export async function openCatalog(config: Config, opts: { migrate?: boolean } = {}): Promise<CatalogDb> {
  await ensureCatalogDatabase(config);
  const db = new Kysely<CatalogDatabase>({
    dialect: new PostgresDialect({
      pool: new pg.Pool({
        connectionString: config.catalogUrl,
        max: CATALOG_POOL_SIZE,
        connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
        application_name: 'tenantctl-catalog',
      }),
    }),
  });
  if (opts.migrate !== false) {
    const { error } = await new Migrator({ db, provider: catalogMigrations }).migrateToLatest();
    if (error) {
      await db.destroy();
      throw catalogError(config, 'could not migrate', error);
    }
  }
  return db;
}

async function ensureCatalogDatabase(config: Config): Promise<void> {
  const client = new pg.Client({ connectionString: config.catalogUrl, connectionTimeoutMillis: CONNECT_TIMEOUT_MS });
  try {
    await client.connect();
    return;
  } catch (err) {
    if ((err as { code?: string }).code !== '3D000') throw catalogError(config, 'is unreachable', err);
  } finally {
    await client.end().catch(() => undefined);
  }
  const url = new URL(config.catalogUrl);
  const dbName = decodeURIComponent(url.pathname.slice(1));
  url.pathname = '/postgres';
  const admin = new pg.Client({ connectionString: url.toString(), connectionTimeoutMillis: CONNECT_TIMEOUT_MS });
  try {
    await admin.connect();
    await admin.query(`create database ${ident(dbName)}`);
  } catch (err) {
    // Two first runs at once: the other one created it.
    if (!isAlreadyExists(err)) throw catalogError(config, 'could not be created', err);
  } finally {
    await admin.end().catch(() => undefined);
  }
}

function catalogError(config: Config, what: string, err: unknown): TenantctlError {
  const u = new URL(config.catalogUrl);
  const where = `${config.catalog.shard ? `on shard ${config.catalog.shard}, ` : ''}${u.hostname}:${u.port || 5432}${u.pathname}`;
  return new TenantctlError(
    'UNREACHABLE',
    `the catalog (${where}) ${what}: ${redactText(err instanceof Error ? err.message : String(err))}`,
    'check catalog.url (or catalog.shard) in the config and that the server runs (tenantctl dev up for the embedded fleet)',
    EXIT.usage,
    { cause: err },
  );
}
