import { readFile, writeFile } from 'node:fs/promises';
import { parseDocument } from 'yaml';
import { beforeAll, describe, expect, it } from 'vitest';
import { Fleet } from '../../src/fleet/fleet.js';
import { holderEntries } from '../../src/fleet/shard-connections.js';
import { loadMigrations } from '../../src/migrate/files.js';
import { moveTenant } from '../../src/move/run.js';
import { TenantctlError } from '../../src/errors.js';
import { cli, type CliRun } from '../helpers/cli.js';
import { json, ownMigrateFleet, sleep, type MigrateEnv } from '../helpers/migrate-env.js';

/**
 * A shard with a tiny maxConnections never hangs a command: the config refuses a budget below
 * what one tenant operation holds on one shard (3), and a wait that could never be served (the
 * process holds every connection of the shard and asks for one more) fails at once with an error
 * naming the shard, its budget and the fix. Private fleet: us1 (catalog) and eu1.
 */
const { env } = ownMigrateFleet();

/** Reject after ms instead of waiting forever: a hang fails the test. */
function within<T>(ms: number, p: Promise<T>, what: string): Promise<T> {
  return Promise.race([p, sleep(ms).then(() => Promise.reject(new Error(`${what}: still waiting after ${ms} ms (hung)`)))]);
}

/** The env's config with eu1's budget forced to `max`, past the config check (the safety net's case). */
function fleetWithBudget(e: MigrateEnv, max: number): Fleet {
  return new Fleet({ ...e.config, shards: e.config.shards.map((s) => (s.name === 'eu1' ? { ...s, maxConnections: max } : s)) });
}

let e: MigrateEnv;
beforeAll(async () => {
  e = await env('tiny');
  await e.create([
    { slug: 'tiny-cli', model: 'pool', shard: 'eu1' },
    { slug: 'tiny-core', model: 'pool', shard: 'eu1' },
  ]);
}, 120_000);

const placement = async (slug: string) =>
  e.db.selectFrom('tenants').select(['model', 'shard', 'status']).where('slug', '=', slug).executeTakeFirstOrThrow();

describe('a config whose shard (not the catalog) has maxConnections: 1', () => {
  it('is refused with the minimum and why, exit 2, nothing moved; with 3 the same-shard move pool → database succeeds', async () => {
    const doc = parseDocument(await readFile(e.configFile, 'utf8'));
    const eu1 = e.config.shards.find((s) => s.name === 'eu1')!;
    doc.setIn(['regions', eu1.region, 'shards', 'eu1', 'maxConnections'], 1);
    const tinyFile = e.configFile.replace(/\.yaml$/, '.tiny.yaml');
    await writeFile(tinyFile, doc.toString());

    // A move between models on the same shard holds the source's fence and snapshot while it
    // creates and loads the target: before the fix this waited forever on a budget of 1.
    let pid = 0;
    const run = cli(['move', 'tiny-cli', '--to-shard', 'eu1', '--to-model', 'database', '--yes', '--json'], {
      config: tinyFile,
      onSpawn: (p) => (pid = p),
    });
    let r: CliRun;
    try {
      r = await within(30_000, run, 'tenantctl move with maxConnections: 1');
    } catch (err) {
      if (pid) process.kill(pid, 'SIGKILL');
      throw err;
    }
    expect(r.code, r.stdout + r.stderr).toBe(2);
    expect(r.stdout + r.stderr).toContain(
      `regions.${eu1.region}.shards.eu1.maxConnections: 1 is too small: one tenant operation holds up to 3 connections to one shard at once`,
    );
    expect(r.stdout + r.stderr).toContain('set it to 3 or more');
    expect(await placement('tiny-cli')).toMatchObject({ model: 'pool', shard: 'eu1' });

    // 3 is enough for the most a tenant operation holds on one shard.
    doc.setIn(['regions', eu1.region, 'shards', 'eu1', 'maxConnections'], 3);
    await writeFile(tinyFile, doc.toString());
    const ok = await within(
      60_000,
      cli(['move', 'tiny-cli', '--to-shard', 'eu1', '--to-model', 'database', '--yes', '--json'], { config: tinyFile }),
      'move',
    );
    expect(ok.code, ok.stdout + ok.stderr).toBe(0);
    expect(json(ok).status).toBe('switched');
    expect(await placement('tiny-cli')).toMatchObject({ model: 'database', shard: 'eu1' });
  }, 120_000);
});

describe('a wait that could never be served fails at once (budget forced below the check)', () => {
  it('nested withClient on a shard with a budget of 1: SHARD_BUDGET_DEADLOCK naming the shard, its budget and the fix', async () => {
    const fleet = fleetWithBudget(e, 1);
    try {
      const nested = fleet.withClient('eu1', 'postgres', () => fleet.withClient('eu1', 'postgres', (c) => c.query('select 1')));
      const err = await within(10_000, nested, 'nested withClient').then(
        () => undefined,
        (x: unknown) => x,
      );
      expect(err).toBeInstanceOf(TenantctlError);
      expect((err as TenantctlError).code).toBe('SHARD_BUDGET_DEADLOCK');
      expect((err as TenantctlError).exitCode).toBe(2);
      expect((err as TenantctlError).message).toContain('shard eu1 has a connection budget of 1 (maxConnections 1)');
      expect((err as TenantctlError).hint).toContain('maxConnections to 3 or more');
      // The connection came back: the shard serves the next caller.
      expect((await fleet.withClient('eu1', 'postgres', (c) => c.query('select 1 as n'))).rows[0].n).toBe(1);
    } finally {
      await fleet.close();
    }
  });

  it('withLeafClient: its body is no holder of its own (no AsyncLocalStorage entry), its connection comes back, and taken inside a withClient body on a budget of 1 it still fails at once', async () => {
    const fleet = fleetWithBudget(e, 1);
    try {
      const entered = holderEntries;
      const leaf = await within(
        10_000,
        fleet.withLeafClient('eu1', 'postgres', (c) => c.query('select 1 as n')),
        'leaf',
      );
      expect(leaf.rows[0].n).toBe(1);
      expect(holderEntries - entered).toBe(0);
      // The connection came back: on a budget of 1 the next caller is served.
      expect((await fleet.withLeafClient('eu1', 'postgres', (c) => c.query('select 2 as n'))).rows[0].n).toBe(2);
      // Its wait is the caller's: inside a body holding the shard's only connection it can never be served.
      const nested = fleet.withClient('eu1', 'postgres', () => fleet.withLeafClient('eu1', 'postgres', (c) => c.query('select 3')));
      const err = await within(10_000, nested, 'leaf inside withClient').then(
        () => undefined,
        (x: unknown) => x,
      );
      expect((err as TenantctlError).code).toBe('SHARD_BUDGET_DEADLOCK');
    } finally {
      await fleet.close();
    }
  });

  it('fails only the wait no one can serve: siblings and a nested wait behind a sibling go on, a third nested level on a budget of 2 fails', async () => {
    const fleet = fleetWithBudget(e, 2);
    try {
      // Eight callers at once on a budget of 2: each waits for the others, none holds while waiting.
      const flat = await within(
        20_000,
        Promise.all(Array.from({ length: 8 }, (_, i) => fleet.withClient('eu1', 'postgres', (c) => c.query('select $1::int as n', [i])))),
        'siblings',
      );
      expect(flat.map((r) => r.rows[0].n)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
      // A holds one and asks for a second while B holds the other and will release it.
      let release!: () => void;
      const gate = new Promise<void>((r) => (release = r));
      const b = fleet.withClient('eu1', 'postgres', () => gate);
      await sleep(50);
      const a = fleet.withClient('eu1', 'postgres', () => fleet.withClient('eu1', 'postgres', (c) => c.query('select 2 as n')));
      await sleep(100);
      release();
      const [ra] = await within(20_000, Promise.all([a, b]), 'nested behind a sibling');
      expect(ra.rows[0].n).toBe(2);
      // Holding both (outer and inner) and asking for a third: no one else could ever release one.
      const deep = fleet.withClient('eu1', 'postgres', () =>
        fleet.withClient('eu1', 'postgres', () => fleet.withClient('eu1', 'postgres', (c) => c.query('select 3'))),
      );
      const err = await within(10_000, deep, 'three nested levels').then(
        () => undefined,
        (x: unknown) => x,
      );
      expect((err as TenantctlError).code).toBe('SHARD_BUDGET_DEADLOCK');
      expect((err as TenantctlError).message).toContain(
        'shard eu1 has a connection budget of 2 (maxConnections 2); this command holds all 2',
      );
    } finally {
      await fleet.close();
    }
  });

  it('a same-shard move pool → database on a budget of 2 fails fast with the clear error, the tenant stays where it was', async () => {
    const fleet = fleetWithBudget(e, 2);
    try {
      const migrations = await loadMigrations(e.migrationsDir);
      const started = Date.now();
      const out = await within(
        30_000,
        moveTenant({ config: fleet.config, db: e.db, fleet, migrations, command: 'test' }, 'tiny-core', {
          toShard: 'eu1',
          toModel: 'database',
        }).then(
          (r) => ({ r, err: undefined as unknown }),
          (err: unknown) => ({ r: undefined, err }),
        ),
        'move on a budget of 2',
      );
      expect(Date.now() - started).toBeLessThan(30_000);
      const text = out.err ? String((out.err as Error).message) : JSON.stringify(out.r);
      expect(out.r?.status ?? 'threw', text).not.toBe('switched');
      expect(text).toContain('shard eu1 has a connection budget of 2');
      expect(await placement('tiny-core')).toMatchObject({ model: 'pool', shard: 'eu1' });
    } finally {
      await fleet.close();
    }
  }, 60_000);
});
