import { isProcessAlive } from '../../src/dev/process-alive.js';
import { chmod, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse, parseDocument, stringify } from 'yaml';
import pg from 'pg';
import { loadConfig } from '../../src/config/load.js';
import { databaseUrl } from '../../src/fleet/connection-url.js';
import { ident } from '../../src/sql.js';
import type { Config } from '../../src/config/types.js';
import { devDown, devUp, embeddedShards, shardDataDir } from '../../src/dev/fleet.js';
import { providedTemplate, seedDataDirs } from './cluster-template.js';

/** The repository root, whatever the current directory of the test run. */
const REPO = fileURLToPath(new URL('../..', import.meta.url));

/** Test fleets live in `<tmpdir>/tenantctl-fleet-XXXXXX`. */
export const PREFIX = 'tenantctl-fleet-';

/** Records which process started a fleet, so that a later run can reap it if that process died. */
export const OWNER_FILE = 'owner.pid';

/**
 * A password with every character that breaks naive URL handling and quoting. Tests assert that
 * it never appears in any output.
 */
export const HOSTILE_PASSWORD = `p@ss:w/rd%"'x`;

export interface TestFleet {
  config: Config;
  /** The temporary tenants.config.yaml; pass it as --config to the CLI. */
  configFile: string;
  /** The temporary folder holding the config, the clusters and backups. */
  dir: string;
  /** The shards' superuser password, decoded (as it must never be printed). */
  password: string;
  /** Stop the clusters and delete the folder. */
  stop(): Promise<void>;
}

/**
 * Start a throwaway fleet of embedded clusters on free ports, with a config file shaped like the
 * repository's tenants.config.yaml. By default 3 shards: us-east (us1, us2), eu-west (eu1,
 * residency eu); the catalog database lives on us1 (created by whoever needs it).
 *
 * @example
 *   const fleet = await startTestFleet({ shards: 1 });
 *   try { ... } finally { await fleet.stop(); }
 */
export async function startTestFleet(opts: { shards?: number; archive?: boolean; template?: string } = {}): Promise<TestFleet> {
  const count = opts.shards ?? 3;
  if (!Number.isInteger(count) || count < 1) throw new Error(`shards must be at least 1, got ${count}`);
  const dir = await mkdtemp(join(tmpdir(), PREFIX));
  // mkdtemp makes 0700; the postgres OS user must be able to pass through to its data dirs.
  await chmod(dir, 0o755);
  try {
    await writeFile(join(dir, OWNER_FILE), String(process.pid));
    const configFile = join(dir, 'tenants.config.yaml');
    await writeFile(configFile, await fleetConfigText(dir, count));
    const config = loadConfig({ file: configFile, env: process.env });
    // Copies of the run's initdb (cluster-template.ts), except for WAL-archiving fleets: pgBackRest
    // keys its stanzas by the cluster's system identifier, which copies share.
    if (!opts.archive) {
      await seedDataDirs(
        opts.template ?? providedTemplate(),
        embeddedShards(config).map((s) => shardDataDir(config, s)),
      );
    }
    // archive: WAL archived with pgBackRest (the point-in-time restore tests only).
    const results = await devUp(config, { testMode: true, archive: opts.archive ?? false });
    const failed = results.filter((r) => r.state === 'failed');
    if (failed.length > 0) {
      throw new Error(`test fleet did not start: ${failed.map((r) => `${r.shard}: ${r.error}`).join('; ')}`);
    }
    let stopped = false;
    return {
      config,
      configFile,
      dir,
      password: HOSTILE_PASSWORD,
      async stop() {
        if (stopped) return;
        stopped = true;
        await devDown(config);
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    // Do not leave half a fleet running behind a failed start.
    try {
      await devDown(loadConfig({ file: join(dir, 'tenants.config.yaml') }));
    } catch {
      /* the config was never written, or nothing started */
    }
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

/**
 * The same shard url as the cluster's superuser (`postgres`, same password): for the few tests
 * that run tenantctl as a superuser on purpose, and for planting flaws only a superuser may.
 *
 * @example
 *   const su = superuserUrl(fleet.config.shards[0].url);
 */
export function superuserUrl(url: string): string {
  const u = new URL(url);
  u.username = 'postgres';
  return u.toString();
}

/**
 * Drop the databases a test file made, as the superuser: another file's session of another role
 * (a tenant role probing every database, in the isolation tests) may be connected, and only a
 * member of its role may end it.
 */
export async function dropDatabasesAsSuperuser(shardUrl: string, databases: string[]): Promise<void> {
  const su = new pg.Client({ connectionString: databaseUrl(superuserUrl(shardUrl), 'postgres') });
  await su.connect();
  try {
    for (const db of databases) await su.query(`drop database if exists ${ident(db)} with (force)`);
  } finally {
    await su.end();
  }
}

/**
 * A copy of a fleet's config file whose shards connect as the superuser: tenantctl run as a
 * superuser, the exception tested on purpose. Returns the new file's path.
 */
export async function superuserConfigFile(configFile: string, catalogDatabase?: string): Promise<string> {
  const doc = parse(await readFile(configFile, 'utf8')) as {
    catalog: { database?: string };
    regions: Record<string, { shards: Record<string, { url: string }> }>;
  };
  for (const region of Object.values(doc.regions)) {
    for (const shard of Object.values(region.shards)) shard.url = superuserUrl(shard.url);
  }
  if (catalogDatabase) doc.catalog.database = catalogDatabase;
  const out = configFile.replace(/\.yaml$/, `.superuser-${process.pid}-${Date.now()}.yaml`);
  await writeFile(out, stringify(doc));
  return out;
}

/**
 * Stop and delete test fleets whose owning process is gone (a run killed before its teardown),
 * so that interrupted runs do not pile up running clusters. Fleets of live processes, such as a
 * colleague's test run on the same machine, are left alone.
 *
 * @example
 *   await reapStaleFleets(); // in globalSetup, before starting the suite's fleet
 */
export async function reapStaleFleets(): Promise<string[]> {
  const reaped: string[] = [];
  const names = await readdir(tmpdir()).catch(() => [] as string[]);
  for (const name of names.filter((n) => n.startsWith(PREFIX))) {
    const dir = join(tmpdir(), name);
    const owner = Number.parseInt(await readFile(join(dir, OWNER_FILE), 'utf8').catch(() => ''), 10);
    if (!Number.isInteger(owner) || isProcessAlive(owner)) continue;
    try {
      await devDown(loadConfig({ file: join(dir, 'tenants.config.yaml') }));
    } catch {
      /* a fleet that never got as far as its config */
    }
    await rm(dir, { recursive: true, force: true });
    reaped.push(dir);
  }
  return reaped;
}

/**
 * The repository's config with the fleet swapped: shards alternate between the two regions
 * (us1, eu1, us2, eu2, ...), so 3 gives us-east: us1, us2 and eu-west: eu1. Comments and every
 * other setting of the shipped file are kept, so tests exercise the real shape.
 */
async function fleetConfigText(dir: string, count: number): Promise<string> {
  const doc = parseDocument(await readFile(join(REPO, 'tenants.config.yaml'), 'utf8'));
  const ports = await freePorts(count);
  const encoded = encodeURIComponent(HOSTILE_PASSWORD);
  const regions: Record<string, { residency?: string; backup: { dir: string }; shards: Record<string, unknown> }> = {
    'us-east': { backup: { dir: join(dir, 'backups', 'us-east') }, shards: {} },
  };
  for (let i = 0; i < count; i++) {
    const region = i % 2 === 0 ? 'us-east' : 'eu-west';
    const name = `${region === 'us-east' ? 'us' : 'eu'}${Math.floor(i / 2) + 1}`;
    regions[region] ??= { residency: 'eu', backup: { dir: join(dir, 'backups', 'eu-west') }, shards: {} };
    regions[region].shards[name] = {
      // The least-privileged shard role operators give tenantctl; `dev up` creates it.
      url: `postgres://tenantctl:${encoded}@127.0.0.1:${ports[i]}/postgres`,
      maxConnections: 10,
      embedded: true,
    };
  }
  doc.set('regions', doc.createNode(regions));
  doc.setIn(['catalog', 'shard'], 'us1');
  doc.setIn(['defaults', 'region'], 'us-east');
  doc.setIn(['migrations', 'dir'], join(REPO, 'migrations'));
  doc.setIn(['dev', 'dataDir'], join(dir, 'clusters'));
  // Test clusters allow 200 connections (src/dev/cluster.ts), and test files run side by side:
  // the serving role's bound is raised with them (doctor's connection headroom still holds).
  doc.setIn(['servingRole', 'connectionLimit'], 150);
  // The shipped tiers without their limits (issue 19): timeouts on application connections are
  // not what the other tests are about; test/integration/tier-limits.test.ts sets tiers of its own.
  const tiers = doc.get('tiers') as { items: { key: unknown; value: { get(k: string): unknown } }[] };
  doc.set('tiers', doc.createNode(Object.fromEntries(tiers.items.map((i) => [String(i.key), { model: i.value.get('model') }]))));
  return doc.toString();
}

/**
 * Distinct ports the kernel reports free right now: all listeners are held open together so
 * that the same port is not handed out twice.
 */
async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
          const server = createServer();
          server.once('error', reject);
          server.listen({ host: '127.0.0.1', port: 0 }, () => resolve(server));
        }),
    ),
  );
  const ports = servers.map((s) => (s.address() as AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  return ports;
}
