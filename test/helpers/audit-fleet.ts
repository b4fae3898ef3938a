import pg from 'pg';
import { loadConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/types.js';
import { openCatalog, type CatalogDb } from '../../src/catalog/open.js';
import { Fleet } from '../../src/fleet/fleet.js';
import { loadMigrations } from '../../src/migrate/files.js';
import { shardDbUrl } from './deps.js';
import { startTestFleet, superuserUrl, type TestFleet } from './test-fleet.js';

export const SHARD_ROLE = 'tenantctl';

export interface AuditFleet {
  fleet: TestFleet;
  /** The config connecting as the least-privilege shard role `tenantctl`. */
  config: Config;
  configFile: string;
  db: CatalogDb;
  conns: Fleet;
  deps: { config: Config; db: CatalogDb; fleet: Fleet; migrations: Awaited<ReturnType<typeof loadMigrations>>; command: string };
  /** SQL as the cluster superuser (to plant flaws tenantctl's role could not). */
  su(shard: string, database: string, sql: string, params?: unknown[]): Promise<pg.QueryResult>;
  /** SQL as tenantctl's shard role. */
  as(shard: string, database: string, sql: string, params?: unknown[]): Promise<pg.QueryResult>;
  stop(): Promise<void>;
}

async function run(url: string, sql: string, params: unknown[] = []): Promise<pg.QueryResult> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return await c.query(sql, params);
  } finally {
    await c.end();
  }
}

/**
 * A private fleet shaped like the isolation design: tenantctl connects as a role `tenantctl`
 * with LOGIN CREATEDB CREATEROLE (not superuser, not BYPASSRLS); the superuser `postgres` is
 * kept for planting flaws.
 */
export async function startAuditFleet(shards = 2): Promise<AuditFleet> {
  const fleet = await startTestFleet({ shards });
  try {
    // The test fleet already connects as the least-privileged shard role (dev up creates it).
    const configFile = fleet.configFile;
    const config = loadConfig({ file: configFile, env: process.env });
    const db = await openCatalog(config);
    const conns = new Fleet(config);
    const migrations = await loadMigrations(config.migrationsDir);
    return {
      fleet,
      config,
      configFile,
      db,
      conns,
      deps: { config, db, fleet: conns, migrations, command: 'test' },
      su: (shard, database, sql, params) => run(superuserUrl(shardDbUrl(fleet.config, shard, database)), sql, params),
      as: (shard, database, sql, params) => run(shardDbUrl(config, shard, database), sql, params),
      async stop() {
        await conns.close();
        await db.destroy();
        await fleet.stop();
      },
    };
  } catch (err) {
    await fleet.stop();
    throw err;
  }
}
