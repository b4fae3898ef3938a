import { beforeAll, describe, expect, it } from 'vitest';
import { json, ownMigrateFleet, sleep, until, type MigrateEnv } from '../helpers/migrate-env.js';
import { closeGate, gateSql } from '../helpers/sql-gate.js';

/**
 * `migrate up` interrupted (SIGKILL, Ctrl-C) and resumed, split with --partition, and with a shard
 * down; on a fleet of its own (2 shards: us1 with the catalog, eu1).
 */
const { env } = ownMigrateFleet();

const appliedCount = async (e: MigrateEnv, db: string, name: string) =>
  (await e.q('us1', db, `select count(*)::int as n from tenantctl.schema_migrations where name = $1`, [name]))[0].n as number;

describe('crash and resume', () => {
  let e: MigrateEnv;
  const slugs = Array.from({ length: 12 }, (_, i) => `rs-${String(i).padStart(2, '0')}`);

  beforeAll(async () => {
    e = await env('rs');
    await e.create(slugs.map((slug) => ({ slug, model: 'schema' as const, shard: 'us1' })));
  });

  it('a run killed with SIGKILL half-way is finished by --resume: exactly its remaining targets', async () => {
    await e.addMigration(
      '0004_slow.sql',
      'select pg_sleep(0.25);\ncreate table slow_done ({{tenant_key_column}} {{tenant_key_type}}, id int);\n',
    );
    let pid = 0;
    const running = e.cli(['migrate', 'up', '--concurrency', '2'], { onSpawn: (p) => (pid = p) });
    const run = await until(async () => (await e.runs()).find((r) => r.status === 'running'));
    // Wait until some targets are recorded as done, then kill it without warning.
    await until(async () => (await e.targetRows(run.id)).filter((r) => r.status === 'succeeded').length >= 3);
    process.kill(pid, 'SIGKILL');
    const killed = await running;
    expect(killed.signal).toBe('SIGKILL');

    const before = await e.targetRows(run.id);
    expect((await e.runs())[0]).toMatchObject({ id: run.id, status: 'running' });
    const remaining = before.filter((r) => r.status !== 'succeeded').map((r) => r.tenants[0]);
    expect(remaining.length).toBeGreaterThan(0);
    expect(remaining.length).toBeLessThan(12);

    // The dead run's lock died with its session: --resume takes over without --wait.
    const r = await e.cli(['migrate', 'up', '--resume', String(run.id), '--json']);
    expect(r.code, r.stderr).toBe(0);
    const doc = json(r);
    expect(doc).toMatchObject({ ok: true, run: run.id, resumed: run.id });
    expect(doc.results.map((x: any) => x.tenant)).toEqual(remaining);
    // A target that finished at the shard but was not yet recorded is found done, not re-applied.
    for (const x of doc.results) expect(x.status).toBe('succeeded');
    expect(await appliedCount(e, 'schemas_rs', '0004_slow')).toBe(12);
    const rows = await e.targetRows(run.id);
    expect(rows).toHaveLength(before.length);
    expect(rows.every((x) => x.status === 'succeeded')).toBe(true);
    expect((await e.runs())[0]).toMatchObject({ id: run.id, status: 'succeeded' });
  });

  it('Ctrl-C stops scheduling, lets running targets finish, records the run as interrupted, exits 130', async () => {
    await e.addMigration('0005_slow.sql', 'select pg_sleep(0.25);\n');
    let pid = 0;
    const running = e.cli(['migrate', 'up', '--concurrency', '2', '--json'], { onSpawn: (p) => (pid = p) });
    const run = await until(async () => (await e.runs()).find((r) => r.status === 'running'));
    await until(async () => (await e.targetRows(run.id)).some((r) => r.status === 'succeeded'));
    process.kill(pid, 'SIGINT');
    const r = await running;
    expect(r.code).toBe(130);
    expect(r.stderr).toMatch(/interrupted: no new targets start/);
    const doc = json(r);
    expect(doc).toMatchObject({ interrupted: true, ok: false });
    expect(doc.targets.notRun).toBeGreaterThan(0);
    const notRun = doc.results.filter((x: any) => x.status === 'skipped');
    expect(notRun.length).toBeGreaterThan(0);
    expect(notRun.every((x: any) => /^not run: interrupted/.test(x.reason))).toBe(true);
    expect((await e.runs())[0]).toMatchObject({ id: run.id, status: 'interrupted' });
    const rows = await e.targetRows(run.id);
    // Nothing was left half-done: each target is either applied and recorded, or not started.
    const applied = await e.q('us1', 'schemas_rs', `select target_schema from tenantctl.schema_migrations where name = '0005_slow'`);
    expect(new Set(applied.map((x) => x.target_schema))).toEqual(
      new Set(rows.filter((x) => x.status === 'succeeded').map((x) => `t_${x.tenants[0].replace(/-/g, '_')}`)),
    );
    expect(rows.filter((x) => x.status === 'not_run').length).toBe(doc.targets.notRun);

    const resumed = json(await e.cli(['migrate', 'up', '--resume', String(run.id), '--json']));
    expect(resumed.results.map((x: any) => x.tenant).sort()).toEqual(
      rows
        .filter((x) => x.status !== 'succeeded')
        .map((x) => x.tenants[0])
        .sort(),
    );
    expect(await appliedCount(e, 'schemas_rs', '0005_slow')).toBe(12);
  });
});

describe('--partition I/N', () => {
  it('covers every target exactly once across N runs, and the N jobs of a CI matrix may run at once', async () => {
    const e = await env('pt');
    await e.create([
      ...Array.from({ length: 14 }, (_, i) => ({ slug: `pt-${i}`, model: 'schema' as const, shard: i % 2 ? 'eu1' : 'us1' })),
      { slug: 'pt-pa', model: 'pool', shard: 'us1' },
      { slug: 'pt-pb', model: 'pool', shard: 'us1' },
      { slug: 'pt-pc', model: 'pool', shard: 'eu1' },
      { slug: 'pt-db', model: 'database', shard: 'eu1' },
    ]);
    await e.addMigration('0004_archive.sql', 'alter table workspaces add column archived_at timestamptz;\n');
    const slices = [];
    for (const p of ['1/3', '2/3', '3/3']) {
      const dry = json(await e.cli(['migrate', 'up', '--partition', p, '--dry-run', '--json']));
      slices.push(dry.results.map((x: any) => x.tenant));
    }
    const all = slices.flat().sort();
    expect(all).toEqual([...Array.from({ length: 14 }, (_, i) => `pt-${i}`), 'pt-db', 'pt-pa', 'pt-pb', 'pt-pc'].sort());
    expect(new Set(all).size).toBe(all.length);
    // Pool tenants of one shard always travel together.
    const withPa = slices.find((s) => s.includes('pt-pa'))!;
    expect(withPa).toContain('pt-pb');

    // Two jobs of one matrix at the same time: both run; a whole-fleet run is refused meanwhile.
    await e.addMigration('0005_pause.sql', 'select pg_sleep(0.3);\n');
    const [one, two] = await Promise.all([
      e.cli(['migrate', 'up', '--partition', '1/2', '--json']),
      e.cli(['migrate', 'up', '--partition', '2/2', '--json']),
    ]);
    expect(one.code, one.stderr).toBe(0);
    expect(two.code, two.stderr).toBe(0);
    const a = json(one);
    const b = json(two);
    expect(a.results.length + b.results.length).toBe(18);
    expect(a.results.every((x: any) => !b.results.some((y: any) => y.tenant === x.tenant))).toBe(true);
    const status = json(await e.cli(['migrate', 'status', '--json']));
    expect(status.summary).toMatchObject({ targets: 17, upToDate: 17, tenants: 18 });

    // The slice's first target waits at a gate the test holds closed (a session of its own), so
    // the slice is still running, however few targets the cost-balanced split gave it.
    const gate = await closeGate(e, 'us1', 'mr-slice');
    await e.addMigration('0006_gate.sql', gateSql('mr-slice'));
    const slice = e.cli(['migrate', 'up', '--partition', '1/2', '--concurrency', '1']);
    // Awaited below; a spawn failure is reported there, not as an unhandled rejection meanwhile.
    slice.catch(() => undefined);
    await until(async () => (await e.runs()).find((r) => r.status === 'running'));
    const [whole, sameSlice] = await Promise.all([e.cli(['migrate', 'up']), e.cli(['migrate', 'up', '--partition', '1/2'])]);
    await gate.open();
    expect(whole.code).toBe(3);
    expect(whole.stderr).toMatch(/partition 1\/2/);
    expect(sameSlice.code).toBe(3);
    expect((await slice).code).toBe(0);

    // The jobs of a matrix without a key, one after another (a small runner pool): the first
    // records its split under the head and the selectors, the second reads it. Computed again,
    // the split would follow the costs the first job's run just rewrote, and tenants fell between
    // the slices with both jobs green.
    await e.addMigration('0007_stagger.sql', 'alter table workspaces add column stagger_at timestamptz;\n');
    const first = json(await e.cli(['migrate', 'up', '--partition', '1/2', '--json']));
    const second = json(await e.cli(['migrate', 'up', '--partition', '2/2', '--json']));
    expect([first.ok, second.ok]).toEqual([true, true]);
    const tenantsOf = (d: any) => d.results.map((x: any) => x.tenant as string);
    expect([...tenantsOf(first), ...tenantsOf(second)].sort()).toEqual(
      [...Array.from({ length: 14 }, (_, i) => `pt-${i}`), 'pt-db', 'pt-pa', 'pt-pb', 'pt-pc'].sort(),
    );
    expect(json(await e.cli(['migrate', 'status', '--json'])).summary).toMatchObject({ targets: 17, upToDate: 17 });
  }, 180_000);
});

describe('--partition I/N with a partition key (a CI matrix)', () => {
  it('the jobs agree on one cost-balanced split through the catalog, even when a tenant comes or goes between their starts', async () => {
    const e = await env('pk');
    const slugs = Array.from({ length: 12 }, (_, i) => `pk-${String(i).padStart(2, '0')}`);
    await e.create(slugs.map((slug, i) => ({ slug, model: 'schema' as const, shard: i % 2 ? 'eu1' : 'us1' })));
    await e.addMigration('0004_pk.sql', 'alter table workspaces add column pk_at timestamptz;\n');
    const matrix = { env: { TENANTCTL_PARTITION_KEY: 'pipeline-7' } };
    const migrated = (doc: any) => doc.results.filter((x: any) => x.applied?.length > 0).map((x: any) => x.tenant as string);

    const one = json(await e.cli(['migrate', 'up', '--partition', '1/3', '--json'], matrix));
    expect(one.ok).toBe(true);
    const recorded = await e.db.selectFrom('migrate_partitions').select(['target', 'slice']).execute();
    expect(recorded).toHaveLength(12);
    // Between the jobs' starts, a tenant job 1 did not take is deleted and a new one is created:
    // a split computed again by jobs 2 and 3 would shift; the recorded one does not.
    const gone = slugs.find((s) => !migrated(one).includes(s))!;
    expect((await e.cli(['tenant', 'delete', gone, '--yes', '--skip-backup'])).code).toBe(0);
    await e.create([{ slug: 'pk-new', model: 'schema', shard: 'us1' }]);
    // And one job 1 did not take moves to the other shard: its target now is one the split does
    // not know (by hash it could fall to job 1, which ran already, and be left out).
    const moved = slugs.find((s) => s !== gone && !migrated(one).includes(s))!;
    const to = slugs.indexOf(moved) % 2 ? 'us1' : 'eu1';
    const mv = await e.cli(['move', moved, '--to-shard', to, '--yes']);
    expect(mv.code, mv.stdout + mv.stderr).toBe(0);
    const two = json(await e.cli(['migrate', 'up', '--partition', '2/3', '--json'], matrix));
    const three = json(await e.cli(['migrate', 'up', '--partition', '3/3', '--json'], matrix));
    const all = [...migrated(one), ...migrated(two), ...migrated(three)].sort();
    expect(all).toEqual(slugs.filter((s) => s !== gone));
    expect(migrated(two), 'the first job to see the moved target takes it').toContain(moved);
    // The newcomer (created at head) is taken the same way, by the first job that sees it: one lists it.
    const newcomer = [one, two, three].filter((d) => d.results.some((x: any) => x.tenant === 'pk-new'));
    expect(newcomer).toHaveLength(1);
    const status = json(await e.cli(['migrate', 'status', '--json']));
    expect(status.summary).toMatchObject({ upToDate: 12 });
    // A dry run of another matrix computes a split but records nothing.
    const dry = await e.cli(['migrate', 'up', '--partition', '1/2', '--dry-run', '--json'], {
      env: { TENANTCTL_PARTITION_KEY: 'pipeline-8' },
    });
    expect(dry.code, dry.stderr).toBe(0);
    expect(await e.db.selectFrom('migrate_partitions').select('key').distinct().execute()).toHaveLength(1);

    // A job of the same key selecting other tenants would read a split of other targets and
    // leave tenants out: refused (exit 2), nothing run.
    await e.addMigration('0005_pk2.sql', 'alter table workspaces add column pk2_at timestamptz;\n');
    const m9 = { env: { TENANTCTL_PARTITION_KEY: 'pipeline-9' } };
    const eu = await e.cli(['migrate', 'up', '--partition', '1/2', '--region', 'eu-west', '--json'], m9);
    expect(eu.code, eu.stderr).toBe(0);
    const runs = (await e.runs()).length;
    const other = await e.cli(['migrate', 'up', '--partition', '2/2', '--json'], m9);
    expect(other.code, other.stdout).toBe(2);
    expect(json(other).error.message).toContain(
      'the split of partition key "pipeline-9" (2 jobs) was recorded by a job with --region eu-west; this job has no selector (every tenant)',
    );
    expect((await e.runs()).length).toBe(runs);
    // The selection spelt otherwise is the same selection.
    const same = await e.cli(['migrate', 'up', '--partition', '2/2', '--region', 'eu-west,eu-west', '--json'], m9);
    expect(same.code, same.stderr).toBe(0);
    // A key without --partition, an empty or an overlong one: exit 2, before the catalog.
    for (const args of [
      ['--partition-key', 'pipeline-9'],
      ['--partition', '1/2', '--partition-key', ''],
      ['--partition', '1/2', '--partition-key', 'k'.repeat(201)],
    ]) {
      const bad = await e.cli(['migrate', 'up', ...args, '--json']);
      expect(bad.code, args.join(' ')).toBe(2);
      expect(json(bad).error.message).toMatch(/--partition-key/);
    }
  });
});

describe('a shard that is down', () => {
  it('fails its targets as UNREACHABLE at once; the rest of the fleet proceeds', async () => {
    // us9: nothing listens there (port 1), like a shard whose server is down.
    const e = await env('dn', { extraShards: { us9: 'postgres://postgres:x@127.0.0.1:1/postgres' } });
    await e.create([
      { slug: 'dn-a', model: 'schema', shard: 'us1' },
      { slug: 'dn-b', model: 'schema', shard: 'eu1' },
      { slug: 'dn-p', model: 'pool', shard: 'eu1' },
    ]);
    for (const [slug, model, db, schema] of [
      ['dn-x', 'schema', 'schemas_dn', 't_dn_x'],
      ['dn-y', 'schema', 'schemas_dn', 't_dn_y'],
      ['dn-z', 'database', 't_dn_z', 'app'],
      ['dn-q', 'pool', 'pool_dn', 'app'],
    ] as const) {
      await e.db
        .insertInto('tenants')
        .values({
          slug,
          key: `k-${slug}`,
          name: slug,
          tier: 'standard',
          model,
          region: 'us-east',
          shard: 'us9',
          database_name: db,
          schema_name: schema,
          residency: null,
          status: 'active',
          status_detail: null,
          schema_version: HEAD,
        })
        .execute();
    }
    await e.addMigration('0004_archive.sql', 'alter table workspaces add column archived_at timestamptz;\n');
    const t0 = Date.now();
    const r = await e.cli(['migrate', 'up', '--on-error', 'continue', '--json']);
    expect(Date.now() - t0).toBeLessThan(15_000);
    expect(r.code).toBe(1);
    const doc = json(r);
    const byTenant = Object.fromEntries(doc.results.map((x: any) => [x.tenant, x]));
    for (const slug of ['dn-a', 'dn-b', 'dn-p']) expect(byTenant[slug]).toMatchObject({ status: 'succeeded', applied: ['0004_archive'] });
    for (const slug of ['dn-x', 'dn-y', 'dn-z', 'dn-q']) {
      expect(byTenant[slug]).toMatchObject({ status: 'failed', shard: 'us9', error: { code: 'UNREACHABLE' } });
      expect(byTenant[slug].error.message).toMatch(/shard us9 \(127\.0\.0\.1:1\/\w+\) is unreachable/);
    }
    expect(r.stdout + r.stderr).not.toContain('postgres:x@');

    const status = await e.cli(['migrate', 'status', '--json']);
    expect(status.code).toBe(1);
    expect(json(status).groups.map((g: any) => g.label)).toEqual(['3 at 0004_archive (head)', '4 unreachable']);
  });
});

const HEAD = '0003_comments';
void sleep;
