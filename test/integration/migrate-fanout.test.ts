import { appendFile, mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import { beforeAll, describe, expect, it } from 'vitest';
import { databaseUrl } from '../../src/fleet/connection-url.js';
import { rlsState } from '../../src/placement/pool/rls.js';
import { closeGate, gateSql } from '../helpers/sql-gate.js';
import { json, ownMigrateFleet, sleep, until, type MigrateEnv } from '../helpers/migrate-env.js';

/**
 * `migrate up` / `migrate status` / `migrate create` through the built CLI, on a fleet of its own
 * (2 shards: us1 with the catalog, eu1) so fixture migrations never touch the shared fleet.
 */
const { env, fleet: ownFleet } = ownMigrateFleet();

const HEAD = '0003_comments';

describe('migrate up: bounds', () => {
  it('keeps every shard within its connection budget while schemas of one database migrate in parallel', async () => {
    const e = await env('budget', { maxConnections: { eu1: 3 } });
    const slugs = Array.from({ length: 60 }, (_, i) => `bud-${i}`);
    await e.create(slugs.map((slug) => ({ slug, model: 'schema' as const, shard: 'eu1' })));
    await e.addMigration('0004_slow_column.sql', 'select pg_sleep(0.03);\nalter table workspaces add column archived_at timestamptz;\n');

    // Sample the shard every few milliseconds while the run goes.
    const eu1 = ownFleet().config.shards.find((s) => s.name === 'eu1')!;
    const sampler = new pg.Client({ connectionString: databaseUrl(eu1.url, 'postgres'), application_name: 'sampler' });
    await sampler.connect();
    const samples: { total: number; migrating: number }[] = [];
    let sampling = true;
    const loop = (async () => {
      while (sampling) {
        const { rows } = await sampler.query<{ total: number; migrating: number }>(
          `select count(*)::int as total,
                  count(*) filter (where state = 'active' and datname = 'schemas_budget')::int as migrating
             from pg_stat_activity where application_name = 'tenantctl'`,
        );
        samples.push(rows[0]);
        await sleep(3);
      }
    })();
    const r = await e.cli(['migrate', 'up', '--json', '--concurrency', '16']);
    sampling = false;
    await loop;
    await sampler.end();

    expect(r.code, r.stderr).toBe(0);
    const doc = json(r);
    expect(doc.summary).toMatchObject({ total: 60, succeeded: 60, failed: 0 });
    expect(samples.length).toBeGreaterThan(20);
    expect(Math.max(...samples.map((s) => s.total))).toBeLessThanOrEqual(3);
    // Schema targets of one database share the pool's connections and run side by side.
    expect(Math.max(...samples.map((s) => s.migrating))).toBeGreaterThan(1);
    const applied = await e.q(
      'eu1',
      'schemas_budget',
      `select count(*)::int as n from tenantctl.schema_migrations where name = '0004_slow_column'`,
    );
    expect(applied[0].n).toBe(60);
    const versions = await e.db.selectFrom('tenants').select('schema_version').distinct().execute();
    expect(versions).toEqual([{ schema_version: '0004_slow_column' }]);

    // Nothing pending: every target is known up to date from one read of its database, and the
    // run finishes without touching a single target.
    const again = json(await e.cli(['migrate', 'up', '--json']));
    expect(again).toMatchObject({ ok: true, targets: { total: 60, upToDate: 60, migrated: 0 } });
    expect(await e.targetRows(again.run)).toEqual([]);
  });
});

describe('migrate up --dry-run', () => {
  it('prints the pending migrations per target and changes nothing: no tracking table, no lock, no run record', async () => {
    const e = await env('dry');
    await e.create([
      { slug: 'dry-s1', model: 'schema', shard: 'us1' },
      { slug: 'dry-p1', model: 'pool', shard: 'eu1' },
      { slug: 'dry-p2', model: 'pool', shard: 'eu1' },
    ]);
    // A database tenant whose database exists but was never migrated: no tracking table yet.
    await e.q('us1', 'postgres', 'create database t_dry_d1');
    await e.db
      .insertInto('tenants')
      .values({
        slug: 'dry-d1',
        key: 'd1',
        name: 'dry-d1',
        tier: 'enterprise',
        model: 'database',
        region: 'us-east',
        shard: 'us1',
        database_name: 't_dry_d1',
        schema_name: 'app',
        residency: null,
        status: 'active',
        status_detail: null,
        schema_version: null,
      })
      .execute();
    await e.addMigration('0004_archive.sql', 'alter table workspaces add column archived_at timestamptz;\n');

    const snapshot = async () => ({
      ops: await e.db
        .selectFrom('operations')
        .select((eb) => eb.fn.countAll<string>().as('n'))
        .executeTakeFirst(),
      targets: await e.db
        .selectFrom('migrate_targets')
        .select((eb) => eb.fn.countAll<string>().as('n'))
        .executeTakeFirst(),
      events: await e.db
        .selectFrom('events')
        .select((eb) => eb.fn.countAll<string>().as('n'))
        .executeTakeFirst(),
      versions: await e.db.selectFrom('tenants').select(['slug', 'schema_version']).orderBy('slug').execute(),
      tracking: {
        schemas: await e.q('us1', 'schemas_dry', 'select target_schema, name from tenantctl.schema_migrations order by 1, 2'),
        pool: await e.q('eu1', 'pool_dry', 'select target_schema, name from tenantctl.schema_migrations order by 1, 2'),
        fresh: await e.q('us1', 't_dry_d1', `select nspname from pg_namespace where nspname in ('tenantctl', 'app')`),
      },
      columns: await e.q(
        'us1',
        'schemas_dry',
        `select count(*)::int as n from information_schema.columns where column_name = 'archived_at'`,
      ),
    });
    const before = await snapshot();
    const r = await e.cli(['migrate', 'up', '--dry-run', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const doc = json(r);
    expect(doc).toMatchObject({ command: 'migrate up', ok: true, dryRun: true, run: null });
    const byTenant = Object.fromEntries(doc.results.map((x: any) => [x.tenant, x]));
    expect(byTenant['dry-s1'].pending).toEqual(['0004_archive']);
    expect(byTenant['dry-p1']).toMatchObject({ target: 'eu1/pool_dry/app', pending: ['0004_archive'] });
    expect(byTenant['dry-p2'].target).toBe('eu1/pool_dry/app');
    expect(byTenant['dry-d1'].pending).toEqual(['0001_workspaces_and_users', '0002_projects_and_tasks', '0003_comments', '0004_archive']);
    expect(await snapshot()).toEqual(before);

    // The text form groups pending migrations by target.
    const text = await e.cli(['migrate', 'up', '--dry-run']);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/eu1\/pool_dry\/app\tdry-p1, dry-p2\t0004_archive/);
    expect(text.stdout).toMatch(/nothing was changed/);
    expect(await snapshot()).toEqual(before);
  });
});

describe('migrate up: the run lock', () => {
  it('a second run exits 3 naming the holder; with --wait it waits and then finds nothing to do', async () => {
    const e = await env('lock');
    await e.create(['a', 'b', 'c'].map((x) => ({ slug: `lock-${x}`, model: 'schema' as const, shard: 'us1' })));
    // The first run's first target waits at a gate until the other three CLI processes have
    // found the lock taken (however busy the machine), then goes on.
    const gate = await closeGate(e, 'us1', 'mf-lock');
    await e.addMigration('0004_slow.sql', gateSql('mf-lock'));
    // The holder is a CI job: the message names it too.
    const first = e.cli(['migrate', 'up', '--concurrency', '1', '--json'], { env: { GITHUB_RUN_ID: '77', GITHUB_REPOSITORY: 'org/repo' } });
    const running = await until(async () => (await e.runs()).find((x) => x.status === 'running'));

    // All three start while the first run holds the lock.
    let said = '';
    const waiting = e.cli(['migrate', 'up', '--wait', '--json'], { onStderr: (s) => (said = s) });
    // Awaited below; a spawn failure is reported there, not as an unhandled rejection meanwhile.
    waiting.catch(() => undefined);
    const [second, asJson] = await Promise.all([e.cli(['migrate', 'up']), e.cli(['migrate', 'up', '--json'])]);
    await until(async () => said.includes('waiting for the run lock'), 60_000);
    await gate.open();
    const waited = await waiting;
    expect(second.code).toBe(3);
    expect(second.stderr).toMatch(
      new RegExp(`another migrate up holds the run lock: run ${running.id} by \\S+ \\(github:org/repo#77\\), pid`),
    );
    expect(second.stderr).toMatch(/pid \d+ on \S+, started \d{4}-/);
    expect(second.stderr).toMatch(/--wait/);
    expect(asJson.code).toBe(3);
    expect(json(asJson)).toMatchObject({ ok: false, error: { code: 'LOCKED' } });

    const done = await first;
    expect(done.code, done.stderr).toBe(0);
    expect(waited.code, waited.stderr).toBe(0);
    expect(waited.stderr).toMatch(/waiting for the run lock: run \d+/);
    expect(json(waited)).toMatchObject({ targets: { upToDate: 3, migrated: 0 } });
    // Only the first and the waiting run were recorded; the refused ones left nothing.
    expect((await e.runs()).map((x) => x.status)).toEqual(['succeeded', 'succeeded']);
  });
});

describe('migrate up: failure policy', () => {
  let e: MigrateEnv;
  const slugs = ['fp-a', 'fp-b', 'fp-c', 'fp-d', 'fp-e', 'fp-f'];
  const breakTenant = (slug: string) =>
    e.q('us1', 'schemas_fp', `insert into ${`t_${slug.replace(/-/g, '_')}`}.workspaces (id, name) values (gen_random_uuid(), 'forbidden')`);

  beforeAll(async () => {
    e = await env('fp');
    await e.create(slugs.map((slug) => ({ slug, model: 'schema' as const, shard: 'us1' })));
    // A constraint that the data of fp-b and fp-d breaks.
    await breakTenant('fp-b');
    await breakTenant('fp-d');
    await e.addMigration('0004_no_forbidden.sql', "alter table workspaces add constraint no_forbidden check (name <> 'forbidden');\n");
  });

  it('--on-error stop: no new targets after the first failure; the rest are reported as not run', async () => {
    const r = await e.cli(['migrate', 'up', '--concurrency', '1']);
    expect(r.code).toBe(1);
    // The failures table: tenant, target, migration, PostgreSQL's message.
    expect(r.stdout).toMatch(
      /fp-b\tus1\/schemas_fp\/t_fp_b\t0004_no_forbidden\tMIGRATION_FAILED: check constraint "no_forbidden" of relation "workspaces" is violated by some row/,
    );
    expect(r.stdout).toMatch(/1 migrated to 0004_no_forbidden, 0 up to date, 1 failed, 4 not run/);
    const [run] = await e.runs();
    expect(run.status).toBe('failed');
    const rows = await e.targetRows(run.id);
    expect(rows.map((x) => [x.tenants[0], x.status])).toEqual([
      ['fp-a', 'succeeded'],
      ['fp-b', 'failed'],
      ['fp-c', 'not_run'],
      ['fp-d', 'not_run'],
      ['fp-e', 'not_run'],
      ['fp-f', 'not_run'],
    ]);
    expect(rows[1].error).toMatchObject({ code: 'MIGRATION_FAILED', migration: '0004_no_forbidden', pgCode: '23514' });
  });

  it('--max-failures stops after that many failures; --on-error continue runs the rest', async () => {
    const capped = json(await e.cli(['migrate', 'up', '--concurrency', '1', '--max-failures', '2', '--json']));
    expect(capped.targets).toMatchObject({ migrated: 1, failed: 2, notRun: 2, upToDate: 1 });
    const rows = (await e.targetRows(capped.run)).map((x) => [x.tenants[0], x.status]);
    expect(rows).toEqual([
      ['fp-b', 'failed'],
      ['fp-c', 'succeeded'],
      ['fp-d', 'failed'],
      ['fp-e', 'not_run'],
      ['fp-f', 'not_run'],
    ]);
    expect(capped.results.find((x: any) => x.tenant === 'fp-e').reason).toMatch(/not run: 2 failure\(s\) reached --max-failures/);

    const r = await e.cli(['migrate', 'up', '--on-error', 'continue', '--json']);
    expect(r.code).toBe(1);
    const doc = json(r);
    expect(doc.summary).toMatchObject({ total: 6, succeeded: 4, failed: 2, skipped: 0 });
    const failed = doc.results.filter((x: any) => x.status === 'failed');
    expect(failed.map((x: any) => x.tenant)).toEqual(['fp-b', 'fp-d']);
    for (const f of failed) {
      expect(f).toMatchObject({
        model: 'schema',
        region: 'us-east',
        shard: 'us1',
        applied: [],
        error: { code: 'MIGRATION_FAILED', migration: '0004_no_forbidden' },
      });
      expect(f.error.message).toMatch(/violated by some row/);
    }
  });

  it('migrate status is exact afterwards: grouped by version, failed tenants named, exit 1', async () => {
    const r = await e.cli(['migrate', 'status', '--json']);
    expect(r.code).toBe(1);
    const doc = json(r);
    expect(doc.groups.map((g: any) => g.label)).toEqual(['4 at 0004_no_forbidden (head)', '2 failed (last run failed; still pending)']);
    const failed = doc.targets.filter((t: any) => t.condition === 'failed');
    expect(failed.map((t: any) => t.tenants[0])).toEqual(['fp-b', 'fp-d']);
    expect(failed[0]).toMatchObject({
      version: HEAD,
      pending: ['0004_no_forbidden'],
      lastRun: { status: 'failed', error: { migration: '0004_no_forbidden' } },
    });
    const text = await e.cli(['migrate', 'status']);
    expect(text.stdout).toMatch(/4 at 0004_no_forbidden \(head\), 2 failed/);
  });

  it("--only-failed RUN retries exactly that run's failed targets", async () => {
    const [last] = await e.runs();
    await e.q('us1', 'schemas_fp', `update t_fp_b.workspaces set name = 'fine' where name = 'forbidden'`);
    const r = await e.cli(['migrate', 'up', '--only-failed', String(last.id), '--json']);
    const doc = json(r);
    expect(r.code).toBe(1);
    expect(doc.retryOf).toBe(last.id);
    expect(doc.results.map((x: any) => [x.tenant, x.status])).toEqual([
      ['fp-b', 'succeeded'],
      ['fp-d', 'failed'],
    ]);
    await e.q('us1', 'schemas_fp', `update t_fp_d.workspaces set name = 'fine' where name = 'forbidden'`);
    const again = json(await e.cli(['migrate', 'up', '--only-failed', String(doc.run), '--json']));
    expect(again.results.map((x: any) => [x.tenant, x.status, x.applied])).toEqual([['fp-d', 'succeeded', ['0004_no_forbidden']]]);
    expect((await e.cli(['migrate', 'status'])).code).toBe(0);
  });
});

describe('migrate up --canary', () => {
  it('runs N schema or database targets first, one at a time, and stops the run if one fails', async () => {
    const e = await env('can');
    await e.create([
      ...['a', 'b', 'c', 'd'].map((x) => ({ slug: `can-${x}`, model: 'schema' as const, shard: 'us1' })),
      { slug: 'can-p', model: 'pool', shard: 'eu1' },
    ]);
    await e.q('us1', 'schemas_can', `insert into t_can_b.workspaces (id, name) values (gen_random_uuid(), 'forbidden')`);
    await e.addMigration('0004_no_forbidden.sql', "alter table workspaces add constraint no_forbidden check (name <> 'forbidden');\n");
    const r = await e.cli(['migrate', 'up', '--canary', '2', '--on-error', 'continue', '--json']);
    expect(r.code).toBe(1);
    const doc = json(r);
    const status = Object.fromEntries(doc.results.map((x: any) => [x.tenant, x.status]));
    // Canaries are can-a then can-b (not the pool target); can-b fails, so nothing else runs.
    expect(status).toEqual({ 'can-a': 'succeeded', 'can-b': 'failed', 'can-c': 'skipped', 'can-d': 'skipped', 'can-p': 'skipped' });
    expect(doc.results.find((x: any) => x.tenant === 'can-p').reason).toMatch(/canary/);

    await e.q('us1', 'schemas_can', `delete from t_can_b.workspaces where name = 'forbidden'`);
    await e.addMigration('0005_pause.sql', 'select pg_sleep(0.05);\n');
    const ok = json(await e.cli(['migrate', 'up', '--canary', '2', '--json']));
    expect(ok.ok).toBe(true);
    const rows = await e.targetRows(ok.run);
    const started = (t: string) => rows.find((x) => x.tenants[0] === t)!;
    const end = (t: string) => started(t).started_at!.getTime() + started(t).duration_ms!;
    // One at a time, and before every other target.
    expect(end('can-a')).toBeLessThanOrEqual(started('can-b').started_at!.getTime() + 5);
    for (const other of ['can-c', 'can-d', 'can-p']) expect(started(other).started_at!.getTime() + 5).toBeGreaterThanOrEqual(end('can-b'));
  });
});

describe('pool targets and the JSON document', () => {
  it('gives every pool tenant its own row, re-applies row-level security on new tables, skips provisioning tenants with the reason', async () => {
    const e = await env('pool');
    await e.create([
      { slug: 'pool-a', model: 'pool', shard: 'us1' },
      { slug: 'pool-b', model: 'pool', shard: 'us1' },
      { slug: 'pool-c', model: 'pool', shard: 'eu1' },
      { slug: 'pool-s', model: 'schema', shard: 'eu1' },
      { slug: 'pool-d', model: 'database', shard: 'eu1' },
    ]);
    await e.db.updateTable('tenants').set({ status: 'suspended' }).where('slug', '=', 'pool-c').execute();
    await e.db
      .insertInto('tenants')
      .values({
        slug: 'pool-new',
        key: 'k-new',
        name: 'n',
        tier: 'free',
        model: 'pool',
        region: 'us-east',
        shard: 'us1',
        database_name: 'pool_pool',
        schema_name: 'app',
        residency: null,
        status: 'provisioning',
        status_detail: null,
        schema_version: null,
      })
      .execute();
    await e.addMigration(
      '0004_labels.sql',
      'create table labels ({{tenant_key_column}} {{tenant_key_type}} not null references workspaces (id), name text not null, primary key ({{tenant_key_column}}, name));\n',
    );
    const r = await e.cli(['migrate', 'up', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const doc = json(r);
    expect(Object.keys(doc)).toEqual(expect.arrayContaining(['command', 'ok', 'summary', 'results', 'run', 'head']));
    expect(doc.summary).toEqual({ total: 6, succeeded: 5, failed: 0, skipped: 1, durationMs: expect.any(Number) });
    const rows = Object.fromEntries(doc.results.map((x: any) => [x.tenant, x]));
    for (const slug of ['pool-a', 'pool-b']) {
      expect(rows[slug]).toEqual({
        tenant: slug,
        model: 'pool',
        region: 'us-east',
        shard: 'us1',
        target: 'us1/pool_pool/app',
        status: 'succeeded',
        applied: ['0004_labels'],
        durationMs: expect.any(Number),
        attempts: 1,
        // When the fan-out ran the pool target: the same for every tenant of it.
        startedAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
        finishedAt: expect.any(String),
      });
    }
    expect(rows['pool-a'].durationMs).toBe(rows['pool-b'].durationMs);
    expect(rows['pool-a'].finishedAt).toBe(rows['pool-b'].finishedAt);
    expect(Date.parse(rows['pool-a'].startedAt) <= Date.parse(rows['pool-a'].finishedAt)).toBe(true);
    // Suspended tenants are migrated so they never drift.
    expect(rows['pool-c']).toMatchObject({ status: 'succeeded', region: 'eu-west', target: 'eu1/pool_pool/app' });
    expect(rows['pool-d']).toMatchObject({ model: 'database', target: 'eu1/t_pool_d/app', applied: ['0004_labels'] });
    expect(rows['pool-new']).toEqual({
      tenant: 'pool-new',
      model: 'pool',
      region: 'us-east',
      shard: 'us1',
      target: 'us1/pool_pool/app',
      status: 'skipped',
      reason: 'provisioning',
    });

    for (const shard of ['us1', 'eu1']) {
      const s = ownFleet().config.shards.find((x) => x.name === shard)!;
      const c = new pg.Client({ connectionString: databaseUrl(s.url, 'pool_pool') });
      await c.connect();
      try {
        const labels = (await rlsState(c, 'app', e.config)).find((t) => t.table === 'labels');
        expect(labels).toMatchObject({ enabled: true, forced: false, adminPolicy: 'true' });
        expect(labels!.policy).toBeTruthy();
      } finally {
        await c.end();
      }
    }
    const versions = await e.db.selectFrom('tenants').select(['slug', 'schema_version']).orderBy('slug').execute();
    const migrated = versions.filter((v) => v.slug !== 'pool-new');
    expect(migrated.map((v) => v.slug)).toEqual(['pool-a', 'pool-b', 'pool-c', 'pool-d', 'pool-s']);
    expect(migrated.every((v) => v.schema_version === '0004_labels')).toBe(true);
    const events = await e.db
      .selectFrom('events')
      .select(['tenant_slug', 'action', 'result'])
      .where('command', '=', 'migrate up')
      .orderBy('tenant_slug')
      .execute();
    expect(events.map((x) => x.tenant_slug)).toEqual(['pool-a', 'pool-b', 'pool-c', 'pool-d', 'pool-s']);
  });
});

describe('migrate status', () => {
  it('groups by version, and reports drift, unknown and never-migrated targets in its exit code', async () => {
    const e = await env('st');
    await e.create(['a', 'b', 'c'].map((x) => ({ slug: `st-${x}`, model: 'schema' as const, shard: 'eu1' })));
    let r = await e.cli(['migrate', 'status']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`3 at ${HEAD} \\(head\\)`));

    await e.addMigration('0004_archive.sql', 'alter table workspaces add column archived_at timestamptz;\n');
    r = await e.cli(['migrate', 'status', '--json']);
    expect(r.code).toBe(1);
    expect(json(r)).toMatchObject({
      ok: false,
      head: '0004_archive',
      summary: { pending: 3, upToDate: 0 },
      groups: [{ label: `3 at ${HEAD} (1 pending)` }],
    });
    expect((await e.cli(['migrate', 'up', '--tenant', 'st-a,st-b'])).code).toBe(0);

    // Drift: an applied file edited; unknown: a migration applied there that is not here.
    await appendFile(join(e.migrationsDir, '0002_projects_and_tasks.sql'), '\n-- edited after it ran\n');
    await e.q(
      'eu1',
      'schemas_st',
      `insert into tenantctl.schema_migrations (target_schema, name, checksum) values ('t_st_b', '0009_from_the_future', 'x')`,
    );
    // Never migrated: a tenant whose schema has nothing applied.
    await e.db
      .insertInto('tenants')
      .values({
        slug: 'st-new',
        key: 'k-new',
        name: 'n',
        tier: 'standard',
        model: 'schema',
        region: 'eu-west',
        shard: 'eu1',
        database_name: 'schemas_st',
        schema_name: 't_st_new',
        residency: null,
        status: 'active',
        status_detail: null,
        schema_version: null,
      })
      .execute();
    r = await e.cli(['migrate', 'status', '--json']);
    expect(r.code).toBe(1);
    const doc = json(r);
    expect(doc.summary).toMatchObject({ tenants: 4, targets: 4, drift: 3, neverMigrated: 1, unknown: 1 });
    const b = doc.targets.find((t: any) => t.tenants[0] === 'st-b');
    expect(b).toMatchObject({ condition: 'drift', unknown: ['0009_from_the_future'], drift: [{ migration: '0002_projects_and_tasks' }] });
    expect(doc.groups.map((g: any) => g.label)).toEqual(['1 never migrated', '3 drifted (applied migrations changed since)']);
    const text = await e.cli(['migrate', 'status']);
    expect(text.stdout).toMatch(
      /t_st_b\tst-b\tdrift\t0009_from_the_future\tchanged: 0002_projects_and_tasks; unknown here: 0009_from_the_future/,
    );

    // migrate up would apply the edited 0002 to the new target while three ran the old one: the
    // run is refused (DRIFT, exit 2) before anything is applied, naming the repair.
    const up = await e.cli(['migrate', 'up', '--on-error', 'continue', '--json']);
    expect(up.code, up.stdout).toBe(2);
    expect(json(up).error).toMatchObject({ code: 'DRIFT', message: expect.stringContaining('t_st_new') });
    expect(json(up).error.hint).toContain('tenantctl migrate repair 0002_projects_and_tasks --tenant st-a,st-b,st-c');
    expect(await e.q('eu1', 'schemas_st', `select 1 from tenantctl.schema_migrations where target_schema = 't_st_new'`)).toEqual([]);
  });
});

describe('migrate up: the state read beside the run record', () => {
  it('a run refused for two versions of a file creates no tracking table where its targets were read', async () => {
    const e = await env('sr');
    await e.create([
      { slug: 'sr-a', model: 'schema', shard: 'eu1' },
      { slug: 'sr-b', model: 'schema', shard: 'eu1' },
      { slug: 'sr-c', model: 'schema', shard: 'us1' },
    ]);
    // A run records the files' checksums in the catalog (what an edit is later compared with).
    expect((await e.cli(['migrate', 'up'])).code).toBe(0);
    // eu1's database of schemas looks never migrated (the state read finds no tracking table and
    // every file pending); us1's target ran the 0002 that is now edited.
    await e.q('eu1', 'schemas_sr', 'drop table tenantctl.schema_migrations');
    await appendFile(join(e.migrationsDir, '0002_projects_and_tasks.sql'), '\n-- edited after it ran\n');
    const runsBefore = (await e.runs()).length;

    // The shards are read while the catalog checks the files: the refusal comes after the read
    // started, and the tracking table (created for a never-migrated database so that every target
    // goes in one round trip) only once the run is recorded. A refused run is never recorded.
    const up = await e.cli(['migrate', 'up', '--json']);
    expect(up.code, up.stdout).toBe(2);
    expect(json(up).error).toMatchObject({ code: 'DRIFT', message: expect.stringContaining('t_sr_a') });
    const table = await e.q('eu1', 'schemas_sr', `select to_regclass('tenantctl.schema_migrations')::text as t`);
    expect(table).toEqual([{ t: null }]);
    expect(await e.runs()).toHaveLength(runsBefore);
  });

  it("a fresh run's rows, written while the shards are read from what the catalog expects, are exactly the targets with work", async () => {
    const e = await env('rr');
    const slugs = ['rr-a', 'rr-b', 'rr-c', 'rr-d'];
    await e.create(slugs.map((slug) => ({ slug, model: 'schema' as const, shard: 'us1' })));
    await e.addMigration('0004_rr.sql', 'alter table workspaces add column rr int;\n');
    // rr-b is up to date on its shard, but the catalog still says it is behind: its row is written
    // early and must go. The catalog says rr-c is at the head while its shard is behind: its row
    // is not written early and must be added before it runs.
    expect((await e.cli(['migrate', 'up', '--tenant', 'rr-b'])).code).toBe(0);
    await e.db.updateTable('tenants').set({ schema_version: HEAD }).where('slug', '=', 'rr-b').execute();
    await e.db.updateTable('tenants').set({ schema_version: '0004_rr' }).where('slug', '=', 'rr-c').execute();

    const up = json(await e.cli(['migrate', 'up', '--json']));
    expect(up).toMatchObject({ ok: true, targets: { total: 4, migrated: 3, upToDate: 1, failed: 0 } });
    const rows = await e.targetRows(up.run);
    // In plan order, each with its outcome; none for the target that was up to date.
    expect(rows.map((r) => [r.tenants[0], r.status, r.applied])).toEqual([
      ['rr-a', 'succeeded', ['0004_rr']],
      ['rr-c', 'succeeded', ['0004_rr']],
      ['rr-d', 'succeeded', ['0004_rr']],
    ]);
    const versions = await e.db.selectFrom('tenants').select(['slug', 'schema_version']).orderBy('slug').execute();
    expect(versions).toEqual(slugs.map((slug) => ({ slug, schema_version: '0004_rr' })));
    const applied = await e.q('us1', 'schemas_rr', `select count(*)::int as n from tenantctl.schema_migrations where name = '0004_rr'`);
    expect(applied).toEqual([{ n: 4 }]);
  });
});

describe('bad input', () => {
  it('duplicate numbers, unreadable files and bad names are exit 2 before anything is touched', async () => {
    const e = await env('bad');
    await e.create([{ slug: 'bad-a', model: 'schema', shard: 'us1' }]);
    const runsBefore = (await e.runs()).length;
    await e.addMigration('0004_one.sql', 'select 1;\n');
    await e.addMigration('0004_two.sql', 'select 2;\n');
    await symlink(join(e.migrationsDir, 'does-not-exist'), join(e.migrationsDir, '0005_dangling.sql'));
    await writeFile(join(e.migrationsDir, '6_Bad-Name.sql'), 'select 3;\n');
    for (const args of [
      ['migrate', 'up'],
      ['migrate', 'up', '--json'],
      ['migrate', 'status'],
      ['migrate', 'up', '--dry-run'],
    ]) {
      const r = await e.cli(args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(/0004_one\.sql, 0004_two\.sql: 2 files share number 0004/);
      expect(r.stderr).toMatch(/0005_dangling\.sql: cannot be read/);
      expect(r.stderr).toMatch(/6_Bad-Name\.sql: bad name/);
    }
    expect((await e.runs()).length).toBe(runsBefore);
    const tracked = await e.q('us1', 'schemas_bad', `select count(*)::int as n from tenantctl.schema_migrations where name like '0004%'`);
    expect(tracked[0].n).toBe(0);
    for (const args of [
      ['migrate', 'up', '--partition', '3/2'],
      ['migrate', 'up', '--on-error', 'maybe'],
      ['migrate', 'up', '--resume', '1', '--tenant', 'x'],
      ['migrate', 'up', '--concurrency', '0'],
    ]) {
      const r = await e.cli(args);
      expect(r.code, args.join(' ')).toBe(2);
    }
    const { rm } = await import('node:fs/promises');
    for (const f of ['0004_two.sql', '0005_dangling.sql', '6_Bad-Name.sql']) await rm(join(e.migrationsDir, f));
    const missing = await e.cli(['migrate', 'up', '--resume', '999999']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/no migrate run 999999 in the catalog/);
  });

  it('migrate create writes the next-numbered file, validates the name and never overwrites', async () => {
    const e = await env('create');
    // A tenant at today's head, so that the files created below are pending somewhere.
    await e.create([{ slug: 'mc-s', model: 'schema', shard: 'eu1' }]);
    let r = await e.cli(['migrate', 'create', 'add_archived_at']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(join(e.migrationsDir, '0004_add_archived_at.sql'));
    r = await e.cli(['migrate', 'create', 'tasks_due_index', '--no-transaction', '--json']);
    expect(json(r)).toMatchObject({ ok: true, file: join(e.migrationsDir, '0005_tasks_due_index.sql') });
    const { readFile } = await import('node:fs/promises');
    expect(await readFile(join(e.migrationsDir, '0005_tasks_due_index.sql'), 'utf8')).toMatch(/^-- tenantctl:no-transaction\n/);
    r = await e.cli(['migrate', 'create', 'note_tags', '--ts']);
    expect(r.stdout).toContain('0006_note_tags.ts');
    for (const bad of ['Add-Archived', '1st', 'has space', 'trailing_', 'x;drop']) {
      r = await e.cli(['migrate', 'create', bad]);
      expect(r.code, bad).toBe(2);
      expect(r.stderr).toMatch(/not lower_snake_case/);
    }
    // A name already taken is refused, nothing written (two files of one name read as one change).
    r = await e.cli(['migrate', 'create', 'add_archived_at']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/already has a migration named add_archived_at: .*0004_add_archived_at\.sql; nothing was written/);
    // The new files are valid migrations: status sees them as pending (exit 1: not every target
    // is at head), in order, for the tenant made before them.
    r = await e.cli(['migrate', 'status', '--json']);
    expect(r.code, r.stderr).toBe(1);
    const status = json(r);
    expect(status).toMatchObject({ ok: false, head: '0006_note_tags' });
    expect(status.targets).toHaveLength(1);
    expect(status.targets[0]).toMatchObject({
      tenants: ['mc-s'],
      pending: ['0004_add_archived_at', '0005_tasks_due_index', '0006_note_tags'],
    });
    // Never overwrites: a directory squatting on the next name is refused (exit 2).
    await mkdir(join(e.migrationsDir, '0007_squat.sql'));
    r = await e.cli(['migrate', 'create', 'squat']);
    expect(r.code).toBe(2);
  });
});
