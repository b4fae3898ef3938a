import { describe, expect, it } from 'vitest';
import { json, ownMigrateFleet, tenantDigests, until, withPg, type MigrateEnv } from '../helpers/migrate-env.js';
import { seed, tenant } from '../helpers/seed.js';
import { superuserUrl } from '../helpers/test-fleet.js';
import { databaseUrl } from '../../src/fleet/connection-url.js';
import { tenantRoleName } from '../../src/placement/naming.js';
import { latestMove } from '../../src/move/record.js';

/**
 * Offline moves build first, fence second (issue 16, items 7 and 9): an exclusive target is made
 * and migrated to the source's version before the tenant's writes are fenced, step by step when a
 * migration runs outside a transaction (CREATE INDEX CONCURRENTLY), so such a file never makes a
 * tenant unmovable and a slow migration never adds to the write block. Private fleet (fixture
 * migrations), the least-privileged shard role, the built CLI.
 */
const { env } = ownMigrateFleet();

const CONCURRENT = '0004_tasks_title_concurrently.sql';
const addConcurrentIndex = (e: MigrateEnv) =>
  e.addMigration(CONCURRENT, '-- tenantctl:no-transaction\ncreate index concurrently tasks_title_idx on tasks (title);\n');

const url = (e: MigrateEnv, shard: string, db: string) => databaseUrl(e.config.shards.find((s) => s.name === shard)!.url, db);

/** A write as the tenant's own role, where the catalog says the tenant lives (the application's view). */
async function appWrite(e: MigrateEnv, slug: string, title: string): Promise<void> {
  const t = (await tenant(e, slug))!;
  await withPg(superuserUrl(url(e, t.shard, t.database_name)), async (c) => {
    await c.query(`set role "${tenantRoleName(t.slug)}"`);
    await c.query(
      `update "${t.schema_name}".tasks set title = $1 where id = (select id from "${t.schema_name}".tasks order by id limit 1)`,
      [title],
    );
  });
}

const titles = async (e: MigrateEnv, slug: string, title: string) => {
  const t = (await tenant(e, slug))!;
  const r = await e.q(t.shard, t.database_name, `select count(*)::int as n from "${t.schema_name}".tasks where title = $1`, [title]);
  return r[0].n as number;
};

/** The concurrent index in the tenant's placement, valid, and the tracking rows there. */
async function placementState(e: MigrateEnv, slug: string) {
  const t = (await tenant(e, slug))!;
  const idx = await e.q(
    t.shard,
    t.database_name,
    `select i.indisvalid as valid from pg_index i join pg_class c on c.oid = i.indexrelid join pg_namespace n on n.oid = c.relnamespace
      where n.nspname = $1 and c.relname = 'tasks_title_idx'`,
    [t.schema_name],
  );
  const applied = await e.q(
    t.shard,
    t.database_name,
    'select name from tenantctl.schema_migrations where target_schema = $1 order by name',
    [t.schema_name],
  );
  return { index: idx.map((r) => r.valid), applied: applied.map((r) => r.name) };
}

const schemaAt = async (e: MigrateEnv, shard: string, schema: string) =>
  (await e.q(shard, `schemas_${e.name}`, 'select 1 from pg_namespace where nspname = $1', [schema]).catch(() => [])).length > 0;

describe('moves in a fleet with a no-transaction migration', () => {
  it('a schema tenant moves after a CREATE INDEX CONCURRENTLY migration (to a schema on another shard, then to a database): dry-run, doctor and the move agree', async () => {
    const e = await env('mbnt');
    await addConcurrentIndex(e);
    await e.create([{ slug: 'nt-m', model: 'schema', shard: 'us1' }]);
    await seed(e, 'nt-m', 80, 'm');
    const before = await tenantDigests(e, 'nt-m');
    const source = await placementState(e, 'nt-m');
    expect(source).toEqual({
      index: [true],
      applied: ['0001_workspaces_and_users', '0002_projects_and_tasks', '0003_comments', '0004_tasks_title_concurrently'],
    });

    const dry = await e.cli(['move', 'nt-m', '--to-shard', 'eu1', '--dry-run', '--json']);
    expect(dry.code, dry.stderr + dry.stdout).toBe(0);
    expect(json(dry)).toMatchObject({ status: 'planned', targetBuild: 'step by step' });
    // doctor answers for moves (offline ones work whatever the role; online ones as it says), and the move below proves it.
    const doctor = await e.cli(['doctor', '--json']);
    const online = (json(doctor).checks as any[]).filter((c) => /online moves on/.test(c.check));
    expect(online.length).toBeGreaterThan(0);
    for (const c of online) expect(c.ok).toBe(true);

    const r = await e.cli(['move', 'nt-m', '--to-shard', 'eu1', '--yes', '--json']);
    expect(r.code, r.stderr + r.stdout).toBe(0);
    const doc = json(r);
    expect(doc).toMatchObject({ status: 'switched', targetBuild: 'step by step' });
    expect(doc.phases.map((p: any) => p.phase)).toEqual(['preflight', 'build', 'fence', 'copy', 'rebuild', 'verify', 'switch', 'unfence']);
    expect((await tenant(e, 'nt-m'))!.shard).toBe('eu1');
    expect(await tenantDigests(e, 'nt-m')).toEqual(before);
    expect(await placementState(e, 'nt-m')).toEqual(source);
    // The application writes at its new home (grants in place).
    await appWrite(e, 'nt-m', 'after the move');
    expect(await titles(e, 'nt-m', 'after the move')).toBe(1);
    const done = await e.cli(['move', 'complete', 'nt-m', '--yes', '--json']);
    expect(done.code, done.stderr + done.stdout).toBe(0);

    // Into a database on the same shard, then back: the same.
    const now = await tenantDigests(e, 'nt-m');
    const db = await e.cli(['move', 'nt-m', '--to-shard', 'eu1', '--to-model', 'database', '--yes', '--json']);
    expect(db.code, db.stderr + db.stdout).toBe(0);
    expect((await tenant(e, 'nt-m'))!.model).toBe('database');
    expect(await tenantDigests(e, 'nt-m')).toEqual(now);
    expect(await placementState(e, 'nt-m')).toEqual(source);
  });
});

describe('build first, fence second', () => {
  it('a slow migration is built before the fence: the write block is copy, verify and switch only', async () => {
    const e = await env('mbslow');
    await e.addMigration('0004_slow.sql', 'select pg_sleep(2);\n');
    await e.create([{ slug: 'slow-m', model: 'schema', shard: 'us1' }]);
    await seed(e, 'slow-m', 40, 's');
    const before = await tenantDigests(e, 'slow-m');
    const r = await e.cli(['move', 'slow-m', '--to-shard', 'eu1', '--yes', '--json']);
    expect(r.code, r.stderr + r.stdout).toBe(0);
    const doc = json(r);
    const ms = Object.fromEntries(doc.phases.map((p: any) => [p.phase, p.ms]));
    expect(ms.build).toBeGreaterThanOrEqual(2000);
    expect(doc.targetBuild).toBe('one transaction');
    expect(doc.writeBlockedMs).toBeLessThan(2000);
    expect(doc.writeBlockedMs).toBeLessThan(doc.durationMs - 2000);
    expect(await tenantDigests(e, 'slow-m')).toEqual(before);
    // The human report shows the block against the total.
    const back = await e.cli(['move', 'rollback', 'slow-m', '--yes']);
    expect(back.code, back.stderr + back.stdout).toBe(0);
    const human = await e.cli(['move', 'slow-m', '--to-shard', 'eu1', '--yes']);
    expect(human.code, human.stderr + human.stdout).toBe(0);
    expect(human.stdout).toMatch(/writes blocked \d+ ms of \d+ ms/);
  });

  it('SIGKILL after the build: the application kept writing meanwhile; the next command removes the built target (rollback) or resumes and carries every write', async () => {
    const e = await env('mbkill');
    await e.create([
      { slug: 'bk-r', model: 'schema', shard: 'us1' },
      { slug: 'bk-b', model: 'schema', shard: 'us1' },
    ]);
    for (const slug of ['bk-r', 'bk-b']) await seed(e, slug, 30, slug);
    for (const how of ['rollback', 'resume'] as const) {
      const slug = how === 'rollback' ? 'bk-b' : 'bk-r';
      let pid = 0;
      const run = e.cli(['move', slug, '--to-shard', 'eu1', '--yes', '--json'], {
        env: { TENANTCTL_FAULT: 'move.after-build' },
        onSpawn: (p) => (pid = p),
      });
      await until(async () => {
        const op = await latestMove(e.db, slug);
        return op?.status === 'running' && op.progress.phases?.build !== undefined;
      }, 60_000);
      // Built, not fenced: the target exists at eu1 while the application writes at the source.
      const t = (await tenant(e, slug))!;
      expect(await schemaAt(e, 'eu1', t.schema_name)).toBe(true);
      await appWrite(e, slug, `written during the build of ${slug}`);
      process.kill(pid, 'SIGKILL');
      expect((await run).signal).toBe('SIGKILL');
      const digests = await tenantDigests(e, slug);
      if (how === 'rollback') {
        const r = await e.cli(['move', 'rollback', slug, '--yes', '--json']);
        expect(r.code, r.stderr + r.stdout).toBe(0);
        expect(await schemaAt(e, 'eu1', t.schema_name)).toBe(false);
        const role = await e.q('eu1', 'postgres', 'select 1 from pg_roles where rolname = $1', [tenantRoleName(slug)]);
        expect(role).toEqual([]);
        expect((await tenant(e, slug))!).toMatchObject({ shard: 'us1', status: 'active' });
      } else {
        const r = await e.cli(['move', slug, '--to-shard', 'eu1', '--yes', '--json']);
        expect(r.code, r.stderr + r.stdout).toBe(0);
        expect(json(r).resumed.cleaned.join('; ')).toMatch(/removed the partial copy/);
        expect((await tenant(e, slug))!).toMatchObject({ shard: 'eu1', status: 'active' });
        expect(await titles(e, slug, `written during the build of ${slug}`)).toBe(1);
      }
      expect(await tenantDigests(e, slug)).toEqual(digests);
    }
  });
});
