import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseUrl } from '../../src/fleet/connection-url.js';
import { devDown, devUp } from '../../src/dev/fleet.js';
import { migrateEnv, withPg, type MigrateEnv } from '../helpers/migrate-env.js';
import { appUrl } from '../helpers/app-url.js';
import { createViaFile } from '../helpers/create-file.js';
import { ok, setTiers } from '../helpers/tiers.js';
import { seed, tenant } from '../helpers/seed.js';
import { startTestFleet, superuserUrl, type TestFleet } from '../helpers/test-fleet.js';

/**
 * Issue 19: a tenant's tier limits follow it wherever its placement is rebuilt (restore
 * --replace, a plain move), and `usage` reports calls and execution time where
 * pg_stat_statements is installed. One private fleet (2 shards, least-privileged shard role)
 * for the whole file: pg_stat_statements must be in shared_preload_libraries, which takes a
 * restart that the shared fleet must never get. Checked through the tenant's application
 * connection (the URL `resolve` prints) and against what PostgreSQL holds.
 */
const TIERS = {
  free: { model: 'pool', statementTimeout: '800ms' },
  snug: { model: 'schema', connectionLimit: 3, statementTimeout: '700ms', lockTimeout: '1s', workMem: '3MB' },
  walled: { model: 'database', connectionLimit: 4, statementTimeout: '900ms', idleInTransactionTimeout: '20s', workMem: '5MB' },
};

let fleet: TestFleet;
const envs: MigrateEnv[] = [];
beforeAll(async () => {
  fleet = await startTestFleet({ shards: 2 });
  const us1 = fleet.config.shards.find((s) => s.name === 'us1')!;
  await withPg(superuserUrl(us1.url), (c) => c.query(`alter system set shared_preload_libraries = 'pg_stat_statements'`));
  // A private fleet: restarting it is ours to do.
  await devDown(fleet.config);
  const up = await devUp(fleet.config, { testMode: true });
  expect(up.filter((r) => r.state === 'failed')).toEqual([]);
  // The operator's step, as a superuser, in the maintenance database `usage` reads it from.
  await withPg(superuserUrl(us1.url), (c) => c.query('create extension pg_stat_statements'));
}, 120_000);
afterAll(async () => {
  await Promise.all(envs.map((e) => e.close().catch(() => undefined)));
  await fleet?.stop();
});

async function env(name: string): Promise<MigrateEnv> {
  const e = await migrateEnv(fleet, name);
  envs.push(e);
  return setTiers(e, TIERS, 'free');
}

/** What PostgreSQL holds of a tenant's limits where the catalog says it lives. */
async function heldLimits(e: MigrateEnv, slug: string) {
  const t = (await tenant(e, slug))!;
  const role = `tenant_${slug.replace(/-/g, '_')}`;
  const [r] = await e.q(
    t.shard,
    'postgres',
    `select r.rolconnlimit as role, d.datconnlimit as database,
            (select setconfig from pg_db_role_setting s where s.setrole = r.oid and s.setdatabase = d.oid) as settings
       from pg_roles r, pg_database d where r.rolname = $1 and d.datname = $2`,
    [role, t.database_name],
  );
  return { shard: t.shard, role: r.role, database: r.database, settings: [...(r.settings ?? [])].sort() };
}

/** The session settings the application gets through the URL `resolve` prints. */
async function appSettings(e: MigrateEnv, slug: string) {
  const app = await appUrl(e, slug);
  return withPg(app.url, async (c) => {
    const { rows } = await c.query(
      `select current_setting('statement_timeout') as st, current_setting('work_mem') as wm, current_setting('lock_timeout') as lt`,
    );
    return rows[0];
  });
}

async function noLimitChanges(e: MigrateEnv, slug: string) {
  const dry = await ok(e, ['tenant', 'limits', 'apply', '--tenant', slug, '--dry-run']);
  expect(dry.results[0].changes).toEqual([]);
}

describe('tier limits follow the placement', () => {
  it('restore --replace of a database tenant keeps its role and database CONNECTION LIMIT and its role settings', async () => {
    const e = await env('lrr');
    await ok(e, ['tenant', 'create', 'lrr-d', '--tier', 'walled', '--shard', 'us1']);
    await seed(e, 'lrr-d', 50, 'r');
    const before = await heldLimits(e, 'lrr-d');
    const budget = fleet.config.shards.find((s) => s.name === 'us1')!.maxConnections;
    expect(before).toMatchObject({ role: 4, database: 4 + budget });
    // The tier's settings, and the search_path every database tenant's role has in its database.
    expect(before.settings).toEqual([
      'idle_in_transaction_session_timeout=20000',
      'search_path=app',
      'statement_timeout=900',
      'work_mem=5120kB',
    ]);
    const backup = (await ok(e, ['backup', 'create', 'lrr-d'])).results[0].backup;
    const { oid } = (
      await e.q('us1', 'postgres', `select oid::int from pg_database where datname = $1`, [(await tenant(e, 'lrr-d'))!.database_name])
    )[0];

    const r = await ok(e, ['restore', backup, '--replace', '--yes']);
    expect(r.result).toMatchObject({ status: 'succeeded', replaced: true });
    // A fresh database under the same name (settings IN DATABASE are kept by its oid).
    const now = (
      await e.q('us1', 'postgres', `select oid::int from pg_database where datname = $1`, [(await tenant(e, 'lrr-d'))!.database_name])
    )[0];
    expect(now.oid).not.toBe(oid);
    expect(await heldLimits(e, 'lrr-d')).toEqual(before);
    expect(await appSettings(e, 'lrr-d')).toMatchObject({ st: '900ms', wm: '5MB' });
    await noLimitChanges(e, 'lrr-d');
  });

  it('a plain move re-applies the tier limits on the target (schema and database tenants, to another shard)', async () => {
    const e = await env('lmv');
    await createViaFile(e, [
      { slug: 'lmv-s', tier: 'snug', shard: 'us1' },
      { slug: 'lmv-d', tier: 'walled', shard: 'us1' },
    ]);
    for (const slug of ['lmv-s', 'lmv-d']) {
      await seed(e, slug, 30, 'm');
      const before = await heldLimits(e, slug);
      const moved = await ok(e, ['move', slug, '--to-shard', 'eu1', '--yes']);
      expect(moved.status).toBe('switched');
      const after = await heldLimits(e, slug);
      expect(after.shard).toBe('eu1');
      expect({ ...after, shard: 'us1' }).toEqual(before);
      await noLimitChanges(e, slug);
    }
    expect(await appSettings(e, 'lmv-s')).toEqual({ st: '700ms', wm: '3MB', lt: '1s' });
    expect(await appSettings(e, 'lmv-d')).toMatchObject({ st: '900ms', wm: '5MB' });
    // The role's limit+1st connection is refused on the target, as it was on the source.
    const app = await appUrl(e, 'lmv-s');
    const open: pg.Client[] = [];
    try {
      for (let i = 0; i < 3; i++) {
        const c = new pg.Client({ connectionString: app.url });
        c.on('error', () => undefined);
        await c.connect();
        open.push(c);
      }
      await expect(withPg(app.url, (c) => c.query('select 1'))).rejects.toThrow(/too many connections for role "tenant_lmv_s"/);
    } finally {
      await Promise.all(open.map((c) => c.end()));
    }
  });
});

describe('usage with pg_stat_statements', () => {
  it("shows calls and total execution time of schema and database tenants' roles, as pg_stat_statements has them; none for pool tenants", async () => {
    const e = await env('lps');
    await createViaFile(e, [
      { slug: 'lps-s', tier: 'snug', shard: 'us1' },
      { slug: 'lps-d', tier: 'walled', shard: 'us1' },
      { slug: 'lps-p', tier: 'free', shard: 'us1' },
    ]);
    const calls = { 'lps-s': 3, 'lps-d': 5 };
    for (const [slug, n] of Object.entries(calls)) {
      const app = await appUrl(e, slug);
      await withPg(app.url, async (c) => {
        for (let i = 0; i < n; i++) await c.query('select pg_sleep(0.01), $1::int', [i]);
      });
    }
    const doc = await ok(e, ['usage', '--tenant', 'lps-s,lps-d,lps-p']);
    // Read as the superuser right after: nothing ran as the tenants' roles in between.
    const us1 = fleet.config.shards.find((s) => s.name === 'us1')!;
    const stats = await withPg(databaseUrl(superuserUrl(us1.url), 'postgres'), async (c) => {
      const { rows } = await c.query(
        `select r.rolname as role, sum(s.calls)::int as calls, sum(s.total_exec_time)::float8 as ms
           from pg_stat_statements s join pg_roles r on r.oid = s.userid where r.rolname like 'tenant_lps_%' group by 1`,
      );
      return Object.fromEntries(rows.map((x) => [x.role, x]));
    });
    const by = Object.fromEntries(doc.tenants.map((t: { tenant: string }) => [t.tenant, t]));
    for (const [slug, n] of Object.entries(calls)) {
      const s = stats[`tenant_${slug.replace('-', '_')}`];
      expect(s.calls).toBeGreaterThanOrEqual(n);
      expect(by[slug].calls).toBe(s.calls);
      // Each call slept 10 ms.
      expect(by[slug].execMs).toBeGreaterThanOrEqual(n * 10);
      expect(Math.abs(by[slug].execMs - s.ms)).toBeLessThan(0.01);
    }
    expect(by['lps-p'].calls).toBeUndefined();
    expect(by['lps-p'].execMs).toBeUndefined();
    expect(doc.shards.find((s: { shard: string }) => s.shard === 'us1').statements).toBeUndefined();
  });
});
