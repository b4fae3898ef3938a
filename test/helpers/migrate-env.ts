import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { parseDocument } from 'yaml';
import { openCatalog, type CatalogDb } from '../../src/catalog/open.js';
import { loadConfig } from '../../src/config/load.js';
import type { Config, Model } from '../../src/config/types.js';
import { databaseUrl } from '../../src/fleet/connection-url.js';
import { Fleet } from '../../src/fleet/fleet.js';
import { loadMigrations } from '../../src/migrate/files.js';
import { createTenants } from '../../src/provision/bulk-create.js';
import type { TenantResult } from '../../src/fanout/result.js';
import { cli, type CliRun } from './cli.js';
import { afterAll, beforeAll } from 'vitest';
import { startTestFleet, superuserUrl, type TestFleet } from './test-fleet.js';

const REPO = fileURLToPath(new URL('../..', import.meta.url));

/**
 * One isolated migration playground on a test fleet: its own catalog database, pool and schema
 * databases on every shard, and its own copy of migrations/ to add files to. Tests of one file
 * share the fleet (starting one costs a second or two) without seeing each other's tenants,
 * runs or locks.
 *
 * @example
 *   const env = await migrateEnv(fleet, 'fail');
 *   await env.create([{ slug: 'fail-a', model: 'schema', shard: 'us1' }]);
 *   await env.addMigration('0004_x.sql', 'alter table workspaces add column x int;');
 *   const r = await env.cli(['migrate', 'up', '--json']);
 */
export interface MigrateEnv {
  name: string;
  configFile: string;
  config: Config;
  migrationsDir: string;
  db: CatalogDb;
  fleet: Fleet;
  /** Provision tenants through the real engine, at head of the migrations present now. */
  create(tenants: { slug: string; model: Model; shard?: string }[]): Promise<TenantResult[]>;
  addMigration(file: string, sql: string): Promise<void>;
  cli(
    args: string[],
    opts?: { env?: NodeJS.ProcessEnv; onSpawn?: (pid: number) => void; onStderr?: (soFar: string) => void },
  ): Promise<CliRun>;
  /** One query as the env's shard role on (shard, database). */
  q<T extends pg.QueryResultRow = any>(shard: string, database: string, sql: string, params?: unknown[]): Promise<T[]>;
  /** The catalog's migrate runs, newest first. */
  runs(): Promise<{ id: number; status: string; holder: string; args: any; progress: any }[]>;
  targetRows(run: number): Promise<
    {
      target: string;
      status: string;
      applied: string[];
      tenants: string[];
      error: any;
      started_at: Date | null;
      duration_ms: number | null;
    }[]
  >;
  close(): Promise<void>;
}

export interface EnvOptions {
  /** Override maxConnections of these shards. */
  maxConnections?: Record<string, number>;
  /** Extra shards (e.g. one that is down): name → url, in region us-east. */
  extraShards?: Record<string, string>;
  migrations?: Partial<Config['migrations']>;
  /** Connect as the clusters' superuser instead of the least-privileged shard role (tested on purpose). */
  superuser?: boolean;
  /** Another tenant key (the user's own schema). */
  tenantKey?: Config['tenantKey'];
  /** Another serving role (its own name keeps a file's role settings off every other file's pools). */
  servingRole?: Partial<Config['servingRole']>;
  /** Copy these migration files instead of the repository's migrations/ (only the named files when `files` is given). */
  migrationsFrom?: string;
  files?: string[];
}

export async function migrateEnv(fleet: TestFleet, name: string, opts: EnvOptions = {}): Promise<MigrateEnv> {
  const dir = await mkdtemp(join(tmpdir(), `tenantctl-menv-${name}-`));
  const migrationsDir = join(dir, 'migrations');
  if (opts.files) {
    await mkdir(migrationsDir, { recursive: true });
    for (const f of opts.files) await cp(join(opts.migrationsFrom ?? join(REPO, 'migrations'), f), join(migrationsDir, f));
  } else {
    await cp(opts.migrationsFrom ?? join(REPO, 'migrations'), migrationsDir, { recursive: true });
  }
  const doc = parseDocument(await readFile(fleet.configFile, 'utf8'));
  doc.setIn(['catalog', 'database'], `cat_${name}`);
  doc.setIn(['migrations', 'dir'], migrationsDir);
  for (const [k, v] of Object.entries(opts.migrations ?? {})) doc.setIn(['migrations', k], v);
  if (opts.tenantKey) doc.set('tenantKey', doc.createNode(opts.tenantKey));
  for (const [k, v] of Object.entries(opts.servingRole ?? {})) doc.setIn(['servingRole', k], v);
  for (const s of fleet.config.shards) {
    doc.setIn(['regions', s.region, 'shards', s.name, 'poolDatabase'], `pool_${name}`);
    doc.setIn(['regions', s.region, 'shards', s.name, 'tenantDatabase'], `schemas_${name}`);
    if (opts.superuser) doc.setIn(['regions', s.region, 'shards', s.name, 'url'], superuserUrl(s.url));
    const max = opts.maxConnections?.[s.name];
    if (max !== undefined) doc.setIn(['regions', s.region, 'shards', s.name, 'maxConnections'], max);
  }
  for (const [shard, url] of Object.entries(opts.extraShards ?? {})) {
    doc.setIn(['regions', 'us-east', 'shards', shard], doc.createNode({ url, maxConnections: 5, embedded: false }));
  }
  const configFile = join(dir, 'tenants.config.yaml');
  await writeFile(configFile, doc.toString());
  const config = loadConfig({ file: configFile });
  const db = await openCatalog(config);
  const fleetConns = new Fleet(config);

  const env: MigrateEnv = {
    name,
    configFile,
    config,
    migrationsDir,
    db,
    fleet: fleetConns,
    async create(tenants) {
      const migrations = await loadMigrations(migrationsDir);
      // A fleet of its own, closed at once: idle connections must not count in later samples.
      const f = new Fleet(config);
      // A signal of its own: without one the operation installs the CLI's SIGINT/SIGTERM handler
      // in the test worker, which then printed "interrupted: the create of …" when vitest stopped it.
      const signal = new AbortController().signal;
      const results = await createTenants({ config, db, fleet: f, migrations, command: 'test', signal }, tenants, {
        concurrency: 8,
        signal,
      }).finally(() => f.close());
      const bad = results.filter((r) => r.status !== 'succeeded');
      if (bad.length) throw new Error(`could not create tenants: ${JSON.stringify(bad.slice(0, 3))}`);
      return results;
    },
    async addMigration(file, sql) {
      await writeFile(join(migrationsDir, file), sql);
    },
    cli(args, o = {}) {
      return cli(args, { config: configFile, ...o });
    },
    async q(shard, database, sql, params = []) {
      const s = config.shards.find((x) => x.name === shard)!;
      const c = new pg.Client({ connectionString: databaseUrl(s.url, database), application_name: 'test' });
      await c.connect();
      try {
        return (await c.query(sql, params)).rows;
      } finally {
        await c.end();
      }
    },
    async runs() {
      const rows = await db.selectFrom('operations').selectAll().where('kind', '=', 'migrate').orderBy('id', 'desc').execute();
      return rows.map((r) => ({ id: Number(r.id), status: r.status, holder: r.holder, args: r.args, progress: r.progress }));
    },
    async targetRows(run) {
      return db.selectFrom('migrate_targets').selectAll().where('run_id', '=', run).orderBy('position').execute() as never;
    },
    async close() {
      await fleetConns.close();
      await db.destroy();
      await rm(dir, { recursive: true, force: true });
    },
  };
  return env;
}

/** The JSON document of a CLI run, with a useful failure message when stdout is not JSON. */
export function json(r: CliRun): any {
  try {
    return JSON.parse(r.stdout);
  } catch {
    throw new Error(`not JSON (exit ${r.code}): ${r.stdout.slice(0, 500)}\nstderr: ${r.stderr.slice(0, 1500)}`);
  }
}

/** One connection to `url` for the duration of `fn`. */
export async function withPg<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

/** Tenants in the env's catalog. */
export async function tenantCount(e: MigrateEnv): Promise<number> {
  const r = await e.db
    .selectFrom('tenants')
    .select((b) => b.fn.countAll().as('n'))
    .executeTakeFirstOrThrow();
  return Number(r.n);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Poll until fn returns a truthy value (or throw after timeoutMs). */
export async function until<T>(fn: () => Promise<T>, timeoutMs = 20_000, everyMs = 25): Promise<NonNullable<T>> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v as NonNullable<T>;
    if (Date.now() > end) throw new Error('timed out waiting');
    await sleep(everyMs);
  }
}

/**
 * A test file's own fleet (2 shards: us1 with the catalog, eu1), started before its tests and
 * stopped after them with every environment made on it, so fixture migrations never touch the
 * shared fleet. Call at the top level of the file.
 *
 * @example
 *   const { env } = ownMigrateFleet();
 *   it('…', async () => { const e = await env('rs'); … });
 */
export function ownMigrateFleet(): { env: (name: string, opts?: EnvOptions) => Promise<MigrateEnv>; fleet: () => TestFleet } {
  let fleet: TestFleet;
  const envs: MigrateEnv[] = [];
  beforeAll(async () => {
    fleet = await startTestFleet({ shards: 2 });
  });
  afterAll(async () => {
    await Promise.all(envs.map((e) => e.close().catch(() => undefined)));
    await fleet?.stop();
  });
  return {
    fleet: () => fleet,
    async env(name, opts) {
      const e = await migrateEnv(fleet, name, opts);
      envs.push(e);
      return e;
    },
  };
}

/**
 * Per table: the order-independent hash of the tenant's rows where the catalog says it lives,
 * read by the test itself (RowTap's hash of the COPY text), to compare before and after a move
 * or a restore.
 */
export async function tenantDigests(e: MigrateEnv, slug: string): Promise<Record<string, string>> {
  const { copyTables } = await import('../../src/copy/tables.js');
  const { digestTable } = await import('../../src/copy/streams.js');
  const t = await e.db.selectFrom('tenants').selectAll().where('slug', '=', slug).executeTakeFirstOrThrow();
  const url = databaseUrl(e.config.shards.find((s) => s.name === t.shard)!.url, t.database_name);
  return withPg(url, async (c) => {
    const out: Record<string, string> = {};
    for (const tb of await copyTables(c, t.schema_name, e.config)) {
      out[tb.table] = (await digestTable(c, tb, { model: t.model as Model, schema: t.schema_name, key: t.key }, e.config)).hash;
    }
    return out;
  });
}
