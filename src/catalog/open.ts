import { Kysely, Migrator, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import type { Config } from '../config/types.js';
import { redactText } from '../config/redact.js';
import { EXIT, hintFor, TenantctlError } from '../errors.js';
import { isAlreadyExists, isLoginRefused } from '../sql.js';
import { CATALOG_POOL_SIZE, CONNECT_TIMEOUT_MS } from '../config/connection-limits.js';
import { closeCatalogToPublic, createClosedDatabase, openClosedDatabase, PUBLIC_REACH_SQL } from './closed.js';
import { watchConnection } from '../connection-loss.js';
import { registerLostSessions } from './lost-sessions.js';
import { catalogMigrations, LATEST_CATALOG_MIGRATION } from './migrations.js';
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
export function openCatalog(config: Config, opts: CatalogOpenOptions = {}): Promise<CatalogDb> {
  return open(config, opts, false);
}

export interface CatalogOpenOptions {
  /** false: a catalog behind this build is used as it is (doctor reads it; nothing migrates it). */
  migrate?: boolean;
  /**
   * Told when this call created the catalog database (a new fleet's first command), with where:
   * a command says so, because a wrong catalog.url would otherwise look like a fleet without tenants.
   */
  onCreate?: (place: string) => void;
}

async function open(config: Config, opts: CatalogOpenOptions, created: boolean): Promise<CatalogDb> {
  const db = newCatalogDb(config);
  // Every command starts here, so the usual case costs one connection and one query: the
  // catalog exists and has the newest migration. Otherwise the database is created if missing
  // and Kysely's migrator (a dozen round trips, under its own lock) brings the schema up.
  const { state, open: reachable, latest } = await catalogState(config, db);
  // Kysely's migrator would call such a catalog corrupted; it is only ahead of this build.
  if (state === 'newer') {
    await db.destroy();
    throw new TenantctlError(
      'CATALOG_NEWER',
      `${catalogPlace(config)} has catalog migration ${latest}, newer than this tenantctl knows (its newest is ${LATEST_CATALOG_MIGRATION}): a newer tenantctl migrated it; nothing was changed`,
      hintFor('CATALOG_NEWER'),
    );
  }
  // A catalog made before tenantctl closed it (or by hand) is closed to PUBLIC here, once.
  if (reachable) await closeCatalogToPublic(db).catch(() => false);
  if (state === 'current' || (state === 'behind' && opts.migrate === false)) return db;
  if (state === 'missing-database') {
    await db.destroy();
    if (created) throw catalogError(config, 'is missing after it was created', new Error('database does not exist'));
    if (await ensureCatalogDatabase(config)) opts.onCreate?.(catalogPlace(config));
    return open(config, opts, true);
  }
  if (opts.migrate === false) return db;
  const { error } = await new Migrator({ db, provider: catalogMigrations }).migrateToLatest();
  if (error) {
    await db.destroy();
    throw catalogError(config, 'could not migrate', error);
  }
  return db;
}

/**
 * Whether the catalog database exists and has the newest migration, and whether PUBLIC can still
 * connect to it (same query). Throws UNREACHABLE otherwise.
 */
async function catalogState(
  config: Config,
  db: CatalogDb,
): Promise<{ state: 'current' | 'behind' | 'newer' | 'missing-database'; open: boolean; latest?: string | null }> {
  try {
    const { rows } = await sql<{ latest: string | null; open: boolean }>`select max(name) as latest, ${sql.raw(PUBLIC_REACH_SQL)} as open
      from kysely_migration`.execute(db);
    const latest = rows[0]?.latest ?? null;
    // Names sort in the order they run (a zero-padded number first).
    const state =
      latest === LATEST_CATALOG_MIGRATION ? 'current' : latest !== null && latest > LATEST_CATALOG_MIGRATION ? 'newer' : 'behind';
    return { state, open: rows[0]?.open ?? false, latest };
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === '3D000') return { state: 'missing-database', open: false };
    if (code === '42P01') return { state: 'behind', open: true }; // a new catalog database: no kysely_migration yet
    await db.destroy();
    throw catalogError(config, 'is unreachable', err);
  }
}

function newCatalogDb(config: Config): CatalogDb {
  const pool = new pg.Pool({
    connectionString: config.catalogUrl,
    max: CATALOG_POOL_SIZE,
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    application_name: 'tenantctl-catalog',
  });
  // The catalog's server going away must be one clear error naming it, not an unheard 'error'
  // event of the pool (idle clients) or of a checked-out client (the pinned lock session).
  const where = catalogPlace(config);
  pool.on('error', () => undefined);
  // Sessions seen lost, by backend pid: the lock session's locks died with its connection.
  const lost = new Set<number>();
  pool.on('connect', (client) =>
    watchConnection(client, where, () => {
      const pid = (client as unknown as { processID?: number }).processID;
      if (pid) lost.add(pid);
    }),
  );
  const db = new Kysely<CatalogDatabase>({ dialect: new PostgresDialect({ pool }) });
  registerLostSessions(db, lost, where);
  return db;
}

/** `the catalog (on shard us1, 127.0.0.1:5432/tenantctl_catalog)` */
function catalogPlace(config: Config): string {
  const u = new URL(config.catalogUrl);
  return `the catalog (${config.catalog.shard ? `on shard ${config.catalog.shard}, ` : ''}${u.hostname}:${u.port || 5432}${u.pathname})`;
}

/** Create the catalog's database; true when this call made it (false: another first run did). */
async function ensureCatalogDatabase(config: Config): Promise<boolean> {
  const url = new URL(config.catalogUrl);
  const dbName = decodeURIComponent(url.pathname.slice(1));
  url.pathname = '/postgres';
  const admin = new pg.Client({ connectionString: url.toString(), connectionTimeoutMillis: CONNECT_TIMEOUT_MS });
  watchConnection(admin, catalogPlace(config));
  try {
    await admin.connect();
    // tenantctl's alone from the start: tenants must never connect to it (src/catalog/closed.ts).
    await createClosedDatabase(admin, dbName);
    return true;
  } catch (err) {
    // Two first runs at once: the other one created it.
    if (!isAlreadyExists(err)) throw catalogError(config, 'could not be created', err);
    // Or a first run killed between creating it and opening it: finish that (its owner may).
    const { rows } = await admin.query<{ open: boolean }>('select datallowconn as open from pg_database where datname = $1', [dbName]);
    if (rows[0] && !rows[0].open) await openClosedDatabase(admin, dbName).catch(() => undefined);
    return false;
  } finally {
    await admin.end().catch(() => undefined);
  }
}

function catalogError(config: Config, what: string, err: unknown): TenantctlError {
  return new TenantctlError(
    'UNREACHABLE',
    `${catalogPlace(config)} ${what}: ${redactText(err instanceof Error ? err.message : String(err))}`,
    isLoginRefused(err)
      ? 'the server answered and refused the login: check the user and password in catalog.url (or the shard url it uses, or the environment variable it names) and pg_hba.conf'
      : 'check catalog.url (or catalog.shard) in the config and that the server runs (tenantctl dev up for the embedded fleet)',
    EXIT.usage,
    { cause: err },
  );
}
