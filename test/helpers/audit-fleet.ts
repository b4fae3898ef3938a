import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import { loadConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/types.js';
import { openCatalog, type CatalogDb } from '../../src/catalog/open.js';
import { Fleet } from '../../src/fleet/fleet.js';
import { loadMigrations } from '../../src/migrate/files.js';
import { rlsState } from '../../src/placement/rls.js';
import { qualified, ident } from '../../src/sql.js';
import { shardDbUrl } from './deps.js';
import { HOSTILE_PASSWORD, startTestFleet, type TestFleet } from './test-fleet.js';

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
    for (const s of fleet.config.shards) {
      await run(shardDbUrl(fleet.config, s.name, 'postgres'), `do $$ begin
        if not exists (select 1 from pg_roles where rolname = 'tenantctl') then
          create role tenantctl login createdb createrole password ${"'" + HOSTILE_PASSWORD.replace(/'/g, "''") + "'"};
        end if; end $$`);
    }
    const text = await readFile(fleet.configFile, 'utf8');
    const configFile = join(fleet.dir, 'tenants.audit.yaml');
    await writeFile(configFile, text.replaceAll('postgres://postgres:', `postgres://${SHARD_ROLE}:`));
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
      su: (shard, database, sql, params) => run(shardDbUrl(fleet.config, shard, database), sql, params),
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

/**
 * The pool state of the isolation design (which main is adopting): tables owned by the shard
 * role are not forced, and `tenantctl_admin` lets the shard role see every row. Idempotent, so it
 * is harmless once provisioning does it itself.
 */
export async function designPoolState(af: AuditFleet, shard: string): Promise<void> {
  const c = new pg.Client({ connectionString: shardDbUrl(af.config, shard, 'tenant_pool') });
  await c.connect();
  try {
    for (const t of await rlsState(c, 'app', af.config)) {
      const q = qualified('app', t.table);
      await c.query(`alter table ${q} no force row level security`);
      await c.query(`drop policy if exists tenantctl_admin on ${q}`);
      await c.query(`create policy tenantctl_admin on ${q} for all to ${ident(SHARD_ROLE)} using (true) with check (true)`);
    }
  } finally {
    await c.end();
  }
}
