import { cp, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { databaseUrl } from '../../src/fleet/connection-url.js';
import { json, ownMigrateFleet, withPg, type MigrateEnv } from '../helpers/migrate-env.js';
import { superuserUrl } from '../helpers/test-fleet.js';
import { cli } from '../helpers/cli.js';
import { lockTenant } from '../../src/operations/tenant-lock.js';

/**
 * Isolation with the user's own schema (a bigint key named company_id, a root table keyed by
 * `id`, a data migration, views, a materialized view, a definer function, a partitioned table,
 * shared tables without the key), run as the least-privileged shard role tenantctl is given in
 * production (LOGIN CREATEDB CREATEROLE) and, on purpose, as a superuser.
 */
const FIXTURES = fileURLToPath(new URL('../fixtures/own-schema', import.meta.url));
const KEY = { column: 'company_id', type: 'bigint' as const, tables: { companies: 'id' }, shared: { plans: 'read' as const } };
const { env, fleet } = ownMigrateFleet();

/** A URL for (shard, database) as another role. */
function urlAs(e: MigrateEnv, shard: string, database: string, user: string, password: string): string {
  const u = new URL(databaseUrl(e.config.shards.find((s) => s.name === shard)!.url, database));
  u.username = encodeURIComponent(user);
  u.password = encodeURIComponent(password);
  return u.toString();
}

/** As the serving role on the pool database, with the tenant setting (or none). */
function asServing<T>(e: MigrateEnv, key: string | null, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const url = urlAs(e, 'us1', `pool_${e.name}`, e.config.servingRole.name, e.config.servingRole.password ?? '');
  return withPg(url, async (c) => {
    if (key !== null) await c.query('select set_config($1, $2, false)', [e.config.rls.setting, key]);
    return fn(c);
  });
}

/** As the cluster's superuser, who sees everything: the ground truth. */
function asSuperuser<T>(e: MigrateEnv, database: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  return withPg(superuserUrl(databaseUrl(e.config.shards.find((s) => s.name === 'us1')!.url, database)), fn);
}

async function ok(e: MigrateEnv, args: string[]) {
  const r = await e.cli([...args, '--json']);
  expect(r.code, `${args.join(' ')}: ${r.stdout}${r.stderr}`).toBe(0);
  return json(r);
}

/** Tenants made by ONE bulk `tenant create --from-file` run (one CLI process start, not one per tenant). */
let files = 0;
async function createAll(e: MigrateEnv, rows: { slug: string; model: string; shard: string; key?: string }[]) {
  const keyed = rows.some((r) => r.key !== undefined);
  const lines = rows.map((r) => [r.slug, r.model, r.shard, ...(keyed ? [r.key] : [])].join(','));
  const file = join(dirname(e.configFile), `tenants-${++files}.csv`);
  await writeFile(file, `slug,model,shard${keyed ? ',key' : ''}\n${lines.join('\n')}\n`);
  // One at a time, in the file's order, as the separate runs were.
  return ok(e, ['tenant', 'create', '--from-file', file, '--concurrency', '1']);
}

for (const mode of ['least-privilege', 'superuser'] as const) {
  const sfx = mode === 'superuser' ? 'su' : 'lp';

  describe(`the user's own schema, tenantctl as ${mode}`, () => {
    it('data migrations change pool rows; views, materialized views, definer functions and partitions do not leak', async () => {
      const e = await env(`own_${sfx}`, {
        superuser: mode === 'superuser',
        tenantKey: KEY,
        migrationsFrom: FIXTURES,
        files: ['0001_companies.sql'],
      });
      const role = (await e.q('us1', 'postgres', 'select rolsuper from pg_roles where rolname = current_user'))[0].rolsuper;
      expect(role).toBe(mode === 'superuser');
      await createAll(e, [
        { slug: `own-a-${sfx}`, model: 'pool', shard: 'us1', key: '101' },
        { slug: `own-b-${sfx}`, model: 'pool', shard: 'us1', key: '102' },
        { slug: `own-c-${sfx}`, model: 'schema', shard: 'us1', key: '103' },
      ]);
      for (const key of ['101', '102']) {
        await asServing(e, key, async (c) => {
          await c.query(`insert into app.companies (id, name) values ($1, 'co')`, [key]);
          await c.query(`insert into app.campaigns (company_id, title) values ($1, $2), ($1, $3)`, [key, `one-${key}`, `two-${key}`]);
          await c.query(`insert into app.clicks (company_id, at, campaign) values ($1, '2026-05-01', 1), ($1, '2027-05-01', 1)`, [key]);
        });
      }
      await e.q('us1', `schemas_${e.name}`, `insert into t_own_c_${sfx}.companies (id, name) values (103, 'c')`);
      await e.q('us1', `schemas_${e.name}`, `insert into t_own_c_${sfx}.campaigns (company_id, title) values (103, 'c1')`);

      for (const f of ['0002_pause_campaigns.sql', '0003_reporting.sql']) await cp(join(FIXTURES, f), join(e.migrationsDir, f));
      const up = await ok(e, ['migrate', 'up']);
      const poolRow = up.results.find((r: any) => r.tenant === `own-a-${sfx}`);
      expect(poolRow).toMatchObject({ status: 'succeeded', applied: ['0002_pause_campaigns', '0003_reporting'] });
      // The side doors it closed are named in the report.
      expect(poolRow.warnings.join('\n')).toMatch(/view app\.campaign_stats now runs with the caller's rights/);
      // A materialized view is never granted to the serving role (it holds every tenant's rows).
      const mv = await asSuperuser(e, `pool_${e.name}`, (c) =>
        c.query(`select has_table_privilege($1, 'app.campaign_totals', 'SELECT') as can`, [e.config.servingRole.name]),
      );
      expect(mv.rows[0].can).toBe(false);
      expect(poolRow.warnings.join('\n')).toMatch(/SECURITY DEFINER function app\.count_campaigns\(\)/);

      // The data migration changed every tenant's rows: pool and schema alike.
      const states = await asSuperuser(e, `pool_${e.name}`, (c) =>
        c.query('select state, count(*)::int as n from app.campaigns group by 1'),
      );
      expect(states.rows).toEqual([{ state: 'paused', n: 4 }]);
      const schemaStates = await e.q('us1', `schemas_${e.name}`, `select state from t_own_c_${sfx}.campaigns`);
      expect(schemaStates).toEqual([{ state: 'paused' }]);

      // Views are filtered for the serving role, with the setting and without it.
      await asServing(e, '101', async (c) => {
        expect((await c.query('select company_id::text, campaigns::int from app.campaign_stats')).rows).toEqual([
          { company_id: '101', campaigns: 2 },
        ]);
        expect((await c.query('select title from app.campaign_titles order by 1')).rows.map((r) => r.title)).toEqual([
          'one-101',
          'two-101',
        ]);
        expect((await c.query('select app.my_campaigns()::int as n')).rows[0].n).toBe(2);
        // Partitions read directly are filtered too.
        expect((await c.query('select company_id::text from app.clicks_2026')).rows).toEqual([{ company_id: '101' }]);
        await expect(c.query('select * from app.campaign_totals')).rejects.toMatchObject({ code: '42501' });
        await expect(c.query('select app.count_campaigns()')).rejects.toMatchObject({ code: '42501' });
      });
      await asServing(e, null, async (c) => {
        expect((await c.query('select * from app.campaign_stats')).rows).toEqual([]);
        expect((await c.query('select * from app.clicks_2027')).rows).toEqual([]);
      });

      // A hole tenantctl cannot close is a failed migration, and nothing of it stays.
      await e.addMigration('0004_open.sql', 'create policy open_all on campaigns using (true);');
      const bad = await e.cli(['migrate', 'up', '--json']);
      expect(bad.code).toBe(1);
      const failed = json(bad).results.find((r: any) => r.tenant === `own-a-${sfx}`);
      expect(failed.status).toBe('failed');
      expect(failed.error.message).toMatch(/open_all on app\.campaigns would let the serving role past tenantctl_isolation/);
      const policies = await asSuperuser(e, `pool_${e.name}`, (c) => c.query(`select polname from pg_policy where polname = 'open_all'`));
      expect(policies.rows).toEqual([]);
    });

    it('pool delete removes every row of the key; the key cannot be re-used while rows remain; a re-used key sees nothing', async () => {
      const e = await env(`del_${sfx}`, {
        superuser: mode === 'superuser',
        tenantKey: KEY,
        migrationsFrom: FIXTURES,
        files: ['0001_companies.sql'],
      });
      await createAll(e, [
        { slug: `del-a-${sfx}`, model: 'pool', shard: 'us1', key: '201' },
        { slug: `del-b-${sfx}`, model: 'pool', shard: 'us1', key: '202' },
      ]);
      for (const key of ['201', '202']) {
        await asServing(e, key, async (c) => {
          await c.query(`insert into app.companies (id, name) values ($1, 'co')`, [key]);
          await c.query(`insert into app.campaigns (company_id, title) values ($1, 't')`, [key]);
          await c.query(`insert into app.clicks (company_id, at, campaign) values ($1, '2026-05-01', 1)`, [key]);
        });
      }
      const del = await ok(e, ['tenant', 'delete', `del-a-${sfx}`, '--yes']);
      expect(del.ok).toBe(true);
      const left = await asSuperuser(e, `pool_${e.name}`, (c) =>
        c.query(`select (select count(*) from app.companies where id = 201)::int + (select count(*) from app.campaigns where company_id = 201)::int
                        + (select count(*) from app.clicks where company_id = 201)::int as a,
                        (select count(*) from app.campaigns where company_id = 202)::int as b`),
      );
      expect(left.rows[0]).toEqual({ a: 0, b: 1 });

      // Rows left behind with a key (written by hand) make that key unusable until they are gone.
      await asSuperuser(e, `pool_${e.name}`, (c) => c.query(`insert into app.companies (id, name) values (201, 'leftover')`));
      const refused = await e.cli(['tenant', 'create', `del-c-${sfx}`, '--model', 'pool', '--shard', 'us1', '--key', '201', '--json']);
      expect(refused.code).toBe(2);
      expect(json(refused).error).toMatchObject({ code: 'KEY_IN_USE' });
      expect(json(refused).error.message).toMatch(/key 201 still has rows in us1\/pool_del_\w+: app\.companies \(1\)/);
      expect(await e.db.selectFrom('tenants').select('slug').where('slug', '=', `del-c-${sfx}`).execute()).toEqual([]);
      await asSuperuser(e, `pool_${e.name}`, (c) => c.query('delete from app.companies where id = 201'));
      await ok(e, ['tenant', 'create', `del-c-${sfx}`, '--model', 'pool', '--shard', 'us1', '--key', '201']);
      // The same bigint written another way is the same key (it was a second tenant reading del-c's rows).
      const same = await e.cli(['tenant', 'create', `del-d-${sfx}`, '--model', 'pool', '--shard', 'us1', '--key', '0201', '--json']);
      expect(same.code, same.stdout + same.stderr).toBe(2);
      expect(json(same).error.message).toMatch(/or its key already exists/);
      await asServing(e, '201', async (c) => {
        expect((await c.query('select * from app.campaigns')).rows).toEqual([]);
        expect((await c.query('select * from app.companies')).rows).toEqual([]);
      });
    });

    it('resolve hands out the serving role or the tenant role, never the admin URL unless asked', async () => {
      const e = await env(`res_${sfx}`, { superuser: mode === 'superuser' });
      await createAll(e, [
        { slug: `res-p-${sfx}`, model: 'pool', shard: 'us1' },
        { slug: `res-q-${sfx}`, model: 'pool', shard: 'us1' },
        { slug: `res-s-${sfx}`, model: 'schema', shard: 'us1' },
      ]);
      const keyP = (await e.db.selectFrom('tenants').select('key').where('slug', '=', `res-p-${sfx}`).executeTakeFirstOrThrow()).key;
      const keyQ = (await e.db.selectFrom('tenants').select('key').where('slug', '=', `res-q-${sfx}`).executeTakeFirstOrThrow()).key;
      for (const [key, name] of [
        [keyP, 'P'],
        [keyQ, 'Q'],
      ]) {
        await asServing(e, key, (c) => c.query(`insert into app.workspaces (id, name) values ($1, $2)`, [key, name]));
      }

      const r = await ok(e, ['resolve', `res-p-${sfx}`]);
      expect(r).toMatchObject({ command: 'resolve', ok: true, role: 'app_user', setting: { name: 'app.tenant_id', value: keyP } });
      expect(r.url).toMatch(/^postgres:\/\/app_user:\*\*\*@127\.0\.0\.1:\d+\/pool_res_\w+\?options=-c%20app\.tenant_id%3D/);
      expect(r.adminUrl).toBeUndefined();
      expect(JSON.stringify(r)).not.toContain('tenantctl:');
      // The URL as given (with the password filled in) sees exactly its tenant, with no SET.
      const url = new URL(r.url);
      url.password = encodeURIComponent(e.config.servingRole.password ?? '');
      const seen = await withPg(url.toString(), (c) => c.query('select name from app.workspaces'));
      expect(seen.rows).toEqual([{ name: 'P' }]);

      const s = await ok(e, ['resolve', `res-s-${sfx}`]);
      expect(s).toMatchObject({ role: `tenant_res_s_${sfx}`, schema: `t_res_s_${sfx}` });
      expect(s.url).toMatch(
        new RegExp(
          `^postgres://tenant_res_s_${sfx}:\\*\\*\\*@127\\.0\\.0\\.1:\\d+/schemas_res_\\w+\\?options=-c%20search_path%3Dt_res_s_${sfx}$`,
        ),
      );
      // A password set by hand (tenantctl does not know of it): the URL works as printed with it.
      await e.q('us1', 'postgres', `alter role tenant_res_s_${sfx} password 'tenant-pw'`);
      const su = new URL(s.url);
      su.password = 'tenant-pw';
      const tables = await withPg(su.toString(), (c) => c.query(`select count(*)::int as n from workspaces`));
      expect(tables.rows[0].n).toBe(0);

      const admin = await ok(e, ['resolve', `res-s-${sfx}`, '--admin']);
      expect(admin.adminUrl).toMatch(
        new RegExp(`^postgres://${mode === 'superuser' ? 'postgres' : 'tenantctl'}:\\*\\*\\*@127\\.0\\.0\\.1:\\d+/schemas_res_`),
      );
      expect(JSON.stringify(admin)).not.toContain(fleet().password);
    });
  });
}

describe('deletes with the least-privileged role', () => {
  it('schema and database tenants leave no schema, database or role; a delete stopped half-way is finished by running it again', async () => {
    const e = await env('dl');
    await createAll(e, [
      { slug: 'dl-s', model: 'schema', shard: 'us1' },
      { slug: 'dl-d', model: 'database', shard: 'eu1' },
      { slug: 'dl-h', model: 'schema', shard: 'us1' },
    ]);
    await ok(e, ['tenant', 'delete', 'dl-s', '--yes']);
    // The tenant's application is still connected: the drop must end its session, which a
    // CREATEROLE role may only do for a role whose privileges it has.
    await e.q('eu1', 'postgres', `alter role tenant_dl_d password 'dl-pw'`);
    const app = new pg.Client({ connectionString: urlAs(e, 'eu1', 't_dl_d', 'tenant_dl_d', 'dl-pw') });
    await app.connect();
    app.on('error', () => undefined);
    await ok(e, ['tenant', 'delete', 'dl-d', '--yes', '--skip-backup']);
    await app.end().catch(() => undefined);
    const us1 = await e.q('us1', 'postgres', `select rolname from pg_roles where rolname in ('tenant_dl_s', 'tenant_dl_h') order by 1`);
    expect(us1).toEqual([{ rolname: 'tenant_dl_h' }]);
    expect(await e.q('us1', `schemas_${e.name}`, `select nspname from pg_namespace where nspname = 't_dl_s'`)).toEqual([]);
    expect(await e.q('eu1', 'postgres', `select 1 from pg_roles where rolname = 'tenant_dl_d'`)).toEqual([]);
    expect(await e.q('eu1', 'postgres', `select 1 from pg_database where datname = 't_dl_d'`)).toEqual([]);

    // Half-way: the schema is gone but the role and the catalog row (deleting) are still there.
    await e.q('us1', `schemas_${e.name}`, 'drop schema t_dl_h cascade');
    await e.db.updateTable('tenants').set({ status: 'deleting' }).where('slug', '=', 'dl-h').execute();
    await ok(e, ['tenant', 'delete', 'dl-h', '--yes']);
    expect(await e.q('us1', 'postgres', `select 1 from pg_roles where rolname = 'tenant_dl_h'`)).toEqual([]);
    expect(await e.db.selectFrom('tenants').select('slug').where('slug', 'like', 'dl-%').execute()).toEqual([]);
  });
});

describe('doctor', () => {
  it("passes on a fresh fleet, reports the shard role's attributes, lists stuck tenants, fails without migrations", async () => {
    const e = await env('doc');
    const fresh = await e.cli(['doctor', '--json']);
    const doc = json(fresh);
    expect(fresh.code, JSON.stringify(doc.checks.filter((c: any) => !c.ok))).toBe(0);
    const role = doc.checks.find((c: any) => c.check === 'shard role on us1');
    expect(role).toMatchObject({ ok: true });
    expect(role.detail).toMatch(/^tenantctl: CREATEDB CREATEROLE; least privilege/);

    await ok(e, ['tenant', 'create', 'doc-p', '--model', 'pool', '--shard', 'us1']);
    const withPool = json(await e.cli(['doctor', '--json']));
    expect(withPool.checks.find((c: any) => c.check === 'pool tables on us1')).toMatchObject({ ok: true });
    expect(withPool.checks.find((c: any) => c.check === 'pool tables on us1').detail).toMatch(
      /owned by tenantctl, row-level security in place/,
    );

    await e.db.updateTable('tenants').set({ status: 'failed', status_detail: 'boom' }).where('slug', '=', 'doc-p').execute();
    const stuck = await e.cli(['doctor', '--json']);
    expect(stuck.code).toBe(1);
    expect(json(stuck).checks.find((c: any) => c.check === 'stuck tenants')).toMatchObject({
      ok: false,
      detail: expect.stringMatching(/doc-p failed \(run tenant create again to retry; boom\)/),
    });
    // Half-way while a live command holds it (a create or move running now): in its hands, not stuck.
    const lock = await lockTenant(e.db, 'doc-p', { command: 'move' });
    try {
      expect(json(await e.cli(['doctor', '--json'])).checks.find((c: any) => c.check === 'stuck tenants')).toMatchObject({ ok: true });
    } finally {
      await lock.release();
    }
    await e.db.updateTable('tenants').set({ status: 'active', status_detail: null }).where('slug', '=', 'doc-p').execute();

    const su = json(await e.cli(['doctor', '--json']));
    expect(su.ok).toBe(true);
    const { rm } = await import('node:fs/promises');
    await rm(e.migrationsDir, { recursive: true });
    const missing = await e.cli(['doctor', '--json']);
    expect(missing.code).toBe(1);
    expect(json(missing).checks.find((c: any) => c.check === 'migrations')).toMatchObject({ ok: false });
  });
});

describe('declared sharing (issue 17): every table of the pool carries the key or is declared shared', () => {
  it('a keyless table or a policy to a role the serving role inherits fails the migration; shared tables are read-only; backups name them and refuse undeclared ones', async () => {
    const e = await env('share', { tenantKey: KEY, migrationsFrom: FIXTURES, files: ['0001_companies.sql'] });
    await createAll(e, [
      { slug: 'sh-a', model: 'pool', shard: 'us1', key: '201' },
      { slug: 'sh-s', model: 'schema', shard: 'us1', key: '202' },
    ]);

    // The declared shared table: readable, not writable, by the serving role.
    await asServing(e, '201', async (c) => {
      expect((await c.query('select count(*)::int as n from app.plans')).rows[0].n).toBe(2);
      await expect(c.query(`insert into app.plans values ('free', 'Free')`)).rejects.toMatchObject({ code: '42501' });
    });

    // A backup names the shared table as not copied, in the manifest and the report.
    const b = await ok(e, ['backup', 'create', 'sh-s']);
    expect(b.results[0]).toMatchObject({ status: 'succeeded', sharedNotCopied: ['plans'] });

    // A keyless table nobody declared: the migration fails for the pool, naming the table and both fixes, nothing applied.
    await e.addMigration('0004_blobs.sql', 'create table attachment_blobs (id bigint primary key, data bytea);');
    const bad = await e.cli(['migrate', 'up', '--json']);
    expect(bad.code).toBe(1);
    const poolRow = json(bad).results.find((r: any) => r.tenant === 'sh-a');
    expect(poolRow.status).toBe('failed');
    expect(poolRow.error.code).toBe('RLS_UNSAFE');
    expect(poolRow.error.message).toMatch(/app\.attachment_blobs has no tenant-key column company_id/);
    expect(`${poolRow.error.message} ${poolRow.error.hint}`).toMatch(/tenantKey\.shared: \[attachment_blobs\]/);
    const left = await asSuperuser(e, `pool_${e.name}`, (c) => c.query(`select to_regclass('app.attachment_blobs') as t`));
    expect(left.rows[0].t).toBeNull();
    // A pool tenant made now fails the same way, with the same fixes (not "run the same command again").
    const made = await e.cli(['tenant', 'create', 'sh-new', '--model', 'pool', '--shard', 'eu1', '--json']);
    expect(made.code, made.stdout + made.stderr).toBe(1);
    const madeError = json(made).results?.[0]?.error ?? json(made).error;
    expect(madeError.code).toBe('RLS_UNSAFE');
    expect(madeError.message).toMatch(/app\.attachment_blobs has no tenant-key column company_id/);
    expect(madeError.hint).toMatch(/tenantKey\.shared: \[attachment_blobs\].*then run the same command again/);
    await ok(e, ['tenant', 'delete', 'sh-new', '--yes', '--skip-backup']);
    // The schema tenant got the table (its own placement): its backup now refuses, exit 2, naming it.
    const refused = await e.cli(['backup', 'create', 'sh-s', '--json']);
    expect(refused.code, refused.stdout + refused.stderr).toBe(2);
    expect(refused.stdout + refused.stderr).toMatch(/UNDECLARED_TABLE|attachment_blobs.*not declared shared/);
    await rmMigration(e, '0004_blobs.sql');
    await e.q('us1', `schemas_${e.name}`, 'drop table t_sh_s.attachment_blobs');
    await e.q('us1', `schemas_${e.name}`, `delete from tenantctl.schema_migrations where name = '0004_blobs'`);

    // A permissive policy to a role the serving role is a member of widens isolation: refused.
    await asSuperuser(e, 'postgres', async (c) => {
      await c.query('create role support_staff nologin');
      await c.query(`grant support_staff to ${e.config.servingRole.name}`);
    });
    try {
      await e.addMigration('0005_support.sql', 'create policy support_sees_all on campaigns for select to support_staff using (true);');
      const widened = await e.cli(['migrate', 'up', '--json']);
      expect(widened.code).toBe(1);
      const row = json(widened).results.find((r: any) => r.tenant === 'sh-a');
      expect(row.error.message).toMatch(/support_sees_all on app\.campaigns would let the serving role past tenantctl_isolation/);
    } finally {
      await rmMigration(e, '0005_support.sql');
      // The schema tenant took the migration (its own placement): its policy goes with the role.
      await asSuperuser(e, `schemas_${e.name}`, (c) => c.query('drop owned by support_staff'));
      await asSuperuser(e, 'postgres', (c) => c.query('drop owned by support_staff; drop role support_staff'));
    }
  });
});

async function rmMigration(e: MigrateEnv, file: string) {
  const { rm } = await import('node:fs/promises');
  await rm(join(e.migrationsDir, file));
}

describe('bigint keys handed out by tenantctl', () => {
  it('skip a key chosen by hand, and go on past every key handed out after a catalog restore (a deleted tenant’s key is never a new tenant’s)', async () => {
    const e = await env('keyseq', { tenantKey: KEY, migrationsFrom: FIXTURES, files: ['0001_companies.sql'] });
    const keyOf = async (db: MigrateEnv['db'], slug: string) =>
      (await db.selectFrom('tenants').select('key').where('slug', '=', slug).executeTakeFirstOrThrow()).key;
    await ok(e, ['tenant', 'create', 'ks-hand', '--model', 'pool', '--shard', 'us1', '--key', '2']);
    await ok(e, ['tenant', 'create', 'ks-a', '--model', 'pool', '--shard', 'us1']);
    // The sequence's next value is the hand-chosen 2: skipped, not "or its key already exists".
    await ok(e, ['tenant', 'create', 'ks-b', '--model', 'pool', '--shard', 'us1']);
    expect([await keyOf(e.db, 'ks-a'), await keyOf(e.db, 'ks-b')]).toEqual(['1', '3']);
    await ok(e, ['tenant', 'delete', 'ks-b', '--yes', '--skip-backup']);
    const cb = await e.cli(['catalog', 'backup', '--json']);
    expect(cb.code, cb.stdout + cb.stderr).toBe(0);
    // The catalog lost: a new catalog database, the backup restored into it.
    const lost = join(dirname(e.configFile), `${e.name}.restored.yaml`);
    const { parseDocument } = await import('yaml');
    const { readFile } = await import('node:fs/promises');
    const doc = parseDocument(await readFile(e.configFile, 'utf8'));
    doc.setIn(['catalog', 'database'], `cat_${e.name}_restored`);
    await writeFile(lost, doc.toString());
    const restored = await cli(['catalog', 'restore', '--yes', '--json'], { config: lost });
    expect(restored.code, restored.stdout + restored.stderr).toBe(0);
    const made = await cli(['tenant', 'create', 'ks-c', '--model', 'pool', '--shard', 'us1', '--json'], { config: lost });
    expect(made.code, made.stdout + made.stderr).toBe(0);
    // Not 3 (ks-b's, whose pool still refuses its writes) nor anything below it.
    expect(JSON.stringify(json(made))).toMatch(/"key": ?"4"/);
  });
});
