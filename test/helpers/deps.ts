import pg from 'pg';
import { inject } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/types.js';
import { openCatalog, type CatalogDb } from '../../src/catalog/open.js';
import { Fleet } from '../../src/fleet/fleet.js';
import { databaseUrl } from '../../src/fleet/connection-url.js';
import { loadMigrations } from '../../src/migrate/files.js';
import type { ProvisionDeps } from '../../src/provision/create-tenant.js';

/** Core-function dependencies against the shared test fleet. Close with `close()`. */
export async function testDeps(): Promise<ProvisionDeps & { close(): Promise<void> }> {
  const config = loadConfig({ file: inject('fleetConfigFile') });
  const db = await openCatalog(config);
  const fleet = new Fleet(config);
  const migrations = await loadMigrations(config.migrationsDir);
  return {
    config,
    db,
    fleet,
    migrations,
    command: 'test',
    async close() {
      await fleet.close();
      await db.destroy();
    },
  };
}

/** One query on a fresh connection (as the superuser unless a URL says otherwise). */
export async function q<T extends pg.QueryResultRow = any>(url: string, sql: string, params: unknown[] = []): Promise<T[]> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query<T>(sql, params)).rows;
  } finally {
    await c.end();
  }
}

export function shardDbUrl(config: Config, shard: string, database: string, user?: { name: string; password: string }): string {
  const s = config.shards.find((x) => x.name === shard)!;
  const u = new URL(databaseUrl(s.url, database));
  if (user) {
    u.username = encodeURIComponent(user.name);
    u.password = encodeURIComponent(user.password);
  }
  return u.toString();
}

export async function catalogCount(db: CatalogDb, slug: string): Promise<number> {
  const r = await db
    .selectFrom('tenants')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('slug', '=', slug)
    .executeTakeFirst();
  return Number(r?.n ?? 0);
}
