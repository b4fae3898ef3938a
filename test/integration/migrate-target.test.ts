import { randomBytes, randomUUID } from 'node:crypto';
import { appendFile, cp, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { dropDatabasesAsSuperuser } from '../helpers/test-fleet.js';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/types.js';
import { databaseUrl } from '../../src/fleet/connection-url.js';
import { Fleet } from '../../src/fleet/fleet.js';
import { migratePlacement, migrateTarget, type MigrateEvent, type MigrationTarget } from '../../src/migrate/apply-target.js';
import { loadMigrations, type MigrationFile } from '../../src/migrate/files.js';
import { buildPlacement } from '../../src/build/at-files.js';
import { readApplied } from '../../src/migrate/tracking.js';
import { ensureServingRole, POLICY_NAME, rlsNeedsApply, rlsState } from '../../src/placement/pool/rls.js';
import { ident } from '../../src/sql.js';
import { tenantRoleName } from '../../src/placement/naming.js';

const config = loadConfig({ file: inject('fleetConfigFile') });
const shard = config.shards[0];
const REPO = fileURLToPath(new URL('../..', import.meta.url));
const FIXTURES = join(REPO, 'test/fixtures/migrate');

// Test files share one fleet: every database here gets a random name and is dropped at the end.
const run = randomBytes(3).toString('hex');
const created: string[] = [];
const clients: pg.Client[] = [];
const tmpDirs: string[] = [];
let admin: pg.Client;
let shipped: MigrationFile[];

async function connect(database: string, url = shard.url): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: databaseUrl(url, database) });
  await c.connect();
  clients.push(c);
  return c;
}

async function freshDatabase(label: string): Promise<string> {
  const name = `mt_${run}_${label}`;
  await admin.query(`create database ${ident(name)}`);
  created.push(name);
  return name;
}

function schemaTarget(database: string, schema: string): MigrationTarget {
  return { model: 'schema', shard: shard.name, database, schema };
}

function poolTarget(database: string): MigrationTarget {
  return { model: 'pool', shard: shard.name, database, schema: 'app' };
}

async function tablesOf(c: pg.Client, schema: string): Promise<string[]> {
  const { rows } = await c.query<{ t: string }>(
    `select table_name as t from information_schema.tables where table_schema = $1 order by 1`,
    [schema],
  );
  return rows.map((r) => r.t);
}

beforeAll(async () => {
  admin = await connect('postgres');
  shipped = await loadMigrations(config.migrationsDir);
});

afterAll(async () => {
  await Promise.all(clients.splice(0).map((c) => c.end().catch(() => undefined)));
  // Sessions of other roles (the serving role's) may still be open.
  await dropDatabasesAsSuperuser(shard.url, created);
  await Promise.all(tmpDirs.map((d) => rm(d, { recursive: true, force: true })));
});

describe('migrateTarget', () => {
  it('applies every migration to a fresh schema, then nothing on a re-run', async () => {
    const db = await freshDatabase('fresh');
    const c = await connect(db);
    const events: MigrateEvent[] = [];
    const first = await migrateTarget(c, schemaTarget(db, 't_acme'), shipped, { config, onEvent: (e) => events.push(e) });
    expect(first.error).toBeUndefined();
    expect(first).toMatchObject({
      target: `${shard.name}/${db}/t_acme`,
      status: 'succeeded',
      applied: ['0001_workspaces_and_users', '0002_projects_and_tasks', '0003_comments'],
      pending: [],
      unknown: [],
    });
    expect(events.filter((e) => e.type === 'done').map((e) => e.migration)).toEqual(first.applied);
    expect(await tablesOf(c, 't_acme')).toEqual(['comments', 'projects', 'task_statuses', 'tasks', 'users', 'workspaces']);
    expect(await tablesOf(c, 'public')).toEqual([]);
    const { rows } = await c.query('select count(*)::int as n from t_acme.task_statuses');
    expect(rows[0].n).toBe(5);

    const applied = await readApplied(c);
    expect(applied.map((r) => [r.schema, r.name])).toEqual(first.applied.map((id) => ['t_acme', id]));
    expect(applied.every((r, i) => r.checksum === shipped[i].checksum)).toBe(true);

    const again = await migrateTarget(c, schemaTarget(db, 't_acme'), shipped, { config });
    expect(again).toMatchObject({ status: 'succeeded', applied: [], pending: [] });

    // The connection goes back to the pool clean: no lock held, no session settings left.
    const locks = await admin.query(`select count(*)::int as n from pg_locks where locktype = 'advisory' and pid = $1`, [
      (c as unknown as { processID: number }).processID,
    ]);
    expect(locks.rows[0].n).toBe(0);
    const sp = await c.query('show search_path');
    expect(sp.rows[0].search_path).toBe('"$user", public');
  });

  it('upTo stops at the named migration; a later call goes on to head; an unknown id is refused', async () => {
    const db = await freshDatabase('upto');
    const c = await connect(db);
    const t = schemaTarget(db, 't_upto');
    const first = await migrateTarget(c, t, shipped, { config, upTo: '0002_projects_and_tasks' });
    expect(first).toMatchObject({
      status: 'succeeded',
      applied: ['0001_workspaces_and_users', '0002_projects_and_tasks'],
      version: '0002_projects_and_tasks',
    });
    expect(await tablesOf(c, 't_upto')).not.toContain('comments');
    // Through the fleet as well: still at that version, nothing pending before it.
    const fleet = new Fleet(config);
    try {
      const same = await migratePlacement(fleet, t, shipped, { config, upTo: '0002_projects_and_tasks' });
      expect(same).toMatchObject({ status: 'succeeded', applied: [], version: '0002_projects_and_tasks' });
    } finally {
      await fleet.close();
    }
    const rest = await migrateTarget(c, t, shipped, { config });
    expect(rest).toMatchObject({ status: 'succeeded', applied: ['0003_comments'] });
    await expect(migrateTarget(c, t, shipped, { config, upTo: '0009_nope' })).rejects.toThrow(/0009_nope is not in the migrations folder/);
  });

  it('buildPlacement makes a schema placement at an explicit set of files, loads there, then brings it to the final files, in one transaction', async () => {
    const db = `mt_${run}_pav`;
    created.push(db);
    const fleet = new Fleet(config);
    try {
      const slug = `pav-${run}`;
      const placed = { slug, key: randomUUID(), model: 'schema' as const, shard: shard.name, database_name: db, schema_name: 't_pav' };
      const seen: string[] = [];
      const out = await buildPlacement(placed, {
        fleet,
        config,
        files: shipped.slice(0, 1),
        load: async (c) => {
          seen.push(...(await tablesOf(c as unknown as pg.Client, 't_pav')));
        },
        finalFiles: shipped.slice(0, 2),
      });
      expect(out.oneTransaction).toBe(true);
      expect(seen).toEqual(['users', 'workspaces']);
      const c = new pg.Client({ connectionString: databaseUrl(shard.url, db) });
      await c.connect();
      try {
        expect((await readApplied(c)).map((r) => r.name)).toEqual(['0001_workspaces_and_users', '0002_projects_and_tasks']);
      } finally {
        await c.end();
      }
    } finally {
      await fleet.close();
      await admin.query(`drop database if exists ${ident(db)} with (force)`);
      await admin.query(`drop role if exists ${ident(tenantRoleName(`pav-${run}`))}`);
    }
  });

  it('a dry run reports pending migrations and creates nothing', async () => {
    const db = await freshDatabase('dry');
    const c = await connect(db);
    const out = await migrateTarget(c, schemaTarget(db, 't_dry'), shipped, { config, dryRun: true });
    expect(out).toMatchObject({ status: 'succeeded', applied: [], pending: shipped.map((m) => m.id) });
    const { rows } = await c.query(`select nspname from pg_namespace where nspname in ('tenantctl', 't_dry')`);
    expect(rows).toEqual([]);
  });

  it('a failing migration rolls back only itself and reports MIGRATION_FAILED with PostgreSQL’s message', async () => {
    const db = await freshDatabase('fail');
    const c = await connect(db);
    const migrations = await loadMigrations(join(FIXTURES, 'failing'));
    const out = await migrateTarget(c, schemaTarget(db, 't_fail'), migrations, { config });
    expect(out.status).toBe('failed');
    expect(out.applied).toEqual(['0001_create_a']);
    expect(out.pending).toEqual(['0002_broken', '0003_never_runs']);
    expect(out.error).toMatchObject({ code: 'MIGRATION_FAILED', migration: '0002_broken', pgCode: '42P01' });
    expect(out.error!.message).toContain('relation "missing_table" does not exist');
    expect(out.error!.message).toContain('0002_broken.sql line 4');
    expect(await tablesOf(c, 't_fail')).toEqual(['a']);
    expect((await readApplied(c, ['t_fail'])).map((r) => r.name)).toEqual(['0001_create_a']);
    // The connection is usable and out of any transaction.
    expect((await c.query('select 1 as one')).rows[0].one).toBe(1);
  });

  it('refuses a target whose applied file was edited (DRIFT), applying nothing', async () => {
    const db = await freshDatabase('drift');
    const c = await connect(db);
    const dir = await mkdtemp(join(tmpdir(), 'tenantctl-drift-'));
    tmpDirs.push(dir);
    await cp(config.migrationsDir, dir, { recursive: true });
    const before = await loadMigrations(dir);
    expect((await migrateTarget(c, schemaTarget(db, 't_drift'), before, { config })).status).toBe('succeeded');

    await appendFile(join(dir, '0002_projects_and_tasks.sql'), '\n-- edited after it ran\n');
    await writeFile(join(dir, '0004_new.sql'), 'create table newer ({{tenant_key_column}} {{tenant_key_type}}, id int);\n');
    const after = await loadMigrations(dir);
    const out = await migrateTarget(c, schemaTarget(db, 't_drift'), after, { config });
    expect(out.status).toBe('failed');
    expect(out.applied).toEqual([]);
    expect(out.error).toMatchObject({ code: 'DRIFT', migration: '0002_projects_and_tasks' });
    expect(out.error!.drift).toHaveLength(1);
    expect(out.error!.hint).toMatch(/new migration/);
    expect(await tablesOf(c, 't_drift')).not.toContain('newer');
    // A dry run says the same.
    expect((await migrateTarget(c, schemaTarget(db, 't_drift'), after, { config, dryRun: true })).error?.code).toBe('DRIFT');
  });

  it('reports migrations applied at the target but missing here as unknown, and carries on', async () => {
    const db = await freshDatabase('unknown');
    const c = await connect(db);
    await migrateTarget(c, schemaTarget(db, 't_new'), shipped, { config });
    const out = await migrateTarget(c, schemaTarget(db, 't_new'), shipped.slice(0, 2), { config });
    expect(out).toMatchObject({ status: 'succeeded', applied: [], unknown: ['0003_comments'] });
  });

  /** The fixture's two indexes on events, and whether each is valid. */
  async function eventIndexes(c: pg.Client, schema: string) {
    const { rows } = await c.query<{ name: string; valid: boolean }>(
      `select c.relname as name, i.indisvalid as valid from pg_index i
         join pg_class c on c.oid = i.indexrelid join pg_namespace n on n.oid = c.relnamespace
        where n.nspname = $1 and c.relname like 'events_%_idx' order by 1`,
      [schema],
    );
    return rows;
  }

  it('runs a no-transaction migration with CREATE INDEX CONCURRENTLY', async () => {
    const db = await freshDatabase('conc');
    const c = await connect(db);
    const migrations = await loadMigrations(join(FIXTURES, 'no-transaction'));
    expect(migrations.map((m) => m.transactional)).toEqual([true, false]);
    const out = await migrateTarget(c, schemaTarget(db, 't_conc'), migrations, { config });
    expect(out.error).toBeUndefined();
    expect(out.applied).toEqual(['0001_events', '0002_events_kind_index']);
    expect(await eventIndexes(c, 't_conc')).toEqual([
      { name: 'events_at_idx', valid: true },
      { name: 'events_kind_idx', valid: true },
    ]);
    // Session settings were reset afterwards.
    expect((await c.query('show search_path')).rows[0].search_path).toBe('"$user", public');
    expect((await c.query('show lock_timeout')).rows[0].lock_timeout).toBe('0');
  });

  it('lets CREATE INDEX CONCURRENTLY wait out a long transaction: no lock timeout, no invalid index left', async () => {
    const db = await freshDatabase('concwait');
    const c = await connect(db);
    const migrations = await loadMigrations(join(FIXTURES, 'no-transaction'));
    await migrateTarget(c, schemaTarget(db, 't_cw'), migrations.slice(0, 1), { config });
    // A writer's open transaction: the index build waits for it (and holds up none of its writes).
    const writer = await connect(db);
    await writer.query('begin');
    await writer.query(`insert into t_cw.events (tenant_id, kind) values (gen_random_uuid(), 'k')`);
    const released = sleep(1200).then(() => writer.query('commit'));
    const cfg: Config = { ...config, migrations: { ...config.migrations, lockTimeout: '200ms' } };
    const out = await migrateTarget(c, schemaTarget(db, 't_cw'), migrations, { config: cfg, retryBaseMs: 50 });
    await released;
    expect(out.error).toBeUndefined();
    expect(out).toMatchObject({ applied: ['0002_events_kind_index'], attempts: 1 });
    expect(await eventIndexes(c, 't_cw')).toEqual([
      { name: 'events_at_idx', valid: true },
      { name: 'events_kind_idx', valid: true },
    ]);
    expect((await c.query('show lock_timeout')).rows[0].lock_timeout).toBe('0');
  });

  it('runs Kysely module migrations (TypeScript in the transaction, .mjs outside)', async () => {
    const db = await freshDatabase('mod');
    const c = await connect(db);
    const migrations = await loadMigrations(join(FIXTURES, 'modules'));
    expect(migrations.map((m) => [m.kind, m.transactional])).toEqual([
      ['sql', true],
      ['module', true],
      ['module', false],
    ]);
    const out = await migrateTarget(c, schemaTarget(db, 't_mod'), migrations, { config });
    expect(out.error).toBeUndefined();
    expect(out.applied).toEqual(['0001_notes', '0002_note_tags', '0003_notes_body_index']);
    const tags = await c.query('select tag from t_mod.note_tags order by tag');
    expect(tags.rows.map((r) => r.tag)).toEqual(['hello', 'schema:t_mod']);
    const idx = await c.query(`select to_regclass('t_mod.notes_body_idx')::text as i`);
    expect(idx.rows[0].i).toBe('t_mod.notes_body_idx');
  });

  it('migrates two schemas of one database at once, while one schema twice waits or is LOCKED', async () => {
    const db = await freshDatabase('lock');
    const slow = await loadMigrations(join(FIXTURES, 'slow'));
    const [c1, c2, c3] = await Promise.all([connect(db), connect(db), connect(db)]);

    // Different schemas: their locks are independent, so two 1-second migrations overlap.
    const spans: Record<string, { start?: number; done?: number }> = { t_one: {}, t_two: {} };
    const track = (e: MigrateEvent) => {
      if (e.migration !== '0001_slow') return;
      const span = spans[e.target.split('/')[2]];
      if (e.type === 'start') span.start = Date.now();
      if (e.type === 'done') span.done = Date.now();
    };
    const [a, b] = await Promise.all([
      migrateTarget(c1, schemaTarget(db, 't_one'), slow, { config, onEvent: track }),
      migrateTarget(c2, schemaTarget(db, 't_two'), slow, { config, onEvent: track }),
    ]);
    expect([a.status, b.status]).toEqual(['succeeded', 'succeeded']);
    expect(spans.t_one.start!).toBeLessThan(spans.t_two.done!);
    expect(spans.t_two.start!).toBeLessThan(spans.t_one.done!);

    // The same schema twice: the second waits briefly, then gives up with LOCKED naming the holder.
    const [x, y] = await Promise.all([
      migrateTarget(c1, schemaTarget(db, 't_same'), slow, { config }),
      sleep(150).then(() => migrateTarget(c2, schemaTarget(db, 't_same'), slow, { config, lockWaitMs: 200 })),
    ]);
    expect(x.status).toBe('succeeded');
    expect(y.status).toBe('failed');
    expect(y.error).toMatchObject({ code: 'LOCKED' });
    expect(y.error!.message).toMatch(/being migrated by another session \(pid \d+/);

    // Waiting long enough: the second finds the first's work done and applies nothing.
    const [p, q] = await Promise.all([
      migrateTarget(c1, schemaTarget(db, 't_wait'), slow, { config }),
      sleep(150).then(() => migrateTarget(c3, schemaTarget(db, 't_wait'), slow, { config, lockWaitMs: 10_000 })),
    ]);
    expect(p.applied).toEqual(['0001_slow', '0002_after_slow']);
    expect(q).toMatchObject({ status: 'succeeded', applied: [] });
  });

  /**
   * A schema at 0001 in a fresh database, a folder adding 0002_archive (ALTER TABLE workspaces),
   * and a blocker whose open transaction holds ACCESS SHARE on that table.
   */
  async function busyArchive(name: string, schema: string) {
    const db = await freshDatabase(name);
    const c = await connect(db);
    await migrateTarget(c, schemaTarget(db, schema), shipped.slice(0, 1), { config });
    const dir = await mkdtemp(join(tmpdir(), `tenantctl-${name}-`));
    tmpDirs.push(dir);
    await writeFile(join(dir, '0001_workspaces_and_users.sql'), shipped[0].sql!);
    await writeFile(join(dir, '0002_archive.sql'), 'alter table workspaces add column archived_at timestamptz;\n');
    const blocker = await connect(db);
    await blocker.query('begin');
    await blocker.query(`lock table ${ident(schema)}.workspaces in access share mode`);
    return { c, db, blocker, migrations: await loadMigrations(dir) };
  }

  it('retries a migration that hits lock_timeout, then succeeds', async () => {
    const { c, db, blocker, migrations } = await busyArchive('retry', 't_retry');
    const cfg: Config = { ...config, migrations: { ...config.migrations, lockTimeout: '100ms', retries: 5 } };
    const events: MigrateEvent[] = [];
    const release = sleep(400).then(() => blocker.query('commit'));
    const out = await migrateTarget(c, schemaTarget(db, 't_retry'), migrations, {
      config: cfg,
      retryBaseMs: 100,
      onEvent: (e) => events.push(e),
    });
    await release;
    expect(out.error).toBeUndefined();
    expect(out.applied).toEqual(['0002_archive']);
    const retries = events.filter((e) => e.type === 'retry');
    expect(retries.length).toBeGreaterThan(0);
    expect(retries[0]).toMatchObject({ migration: '0002_archive', pgCode: '55P03' });
  });

  it('gives up with LOCKED after the retries are spent, naming the session that holds the table', async () => {
    const { c, db, blocker, migrations } = await busyArchive('spent', 't_spent');
    const cfg: Config = { ...config, migrations: { ...config.migrations, lockTimeout: '50ms', retries: 2 } };
    const out = await migrateTarget(c, schemaTarget(db, 't_spent'), migrations, { config: cfg, retryBaseMs: 10 });
    await blocker.query('rollback');
    expect(out.error).toMatchObject({ code: 'LOCKED', migration: '0002_archive', pgCode: '55P03' });
    expect(out.error!.message).toMatch(/^0002_archive could not lock a table of .*t_spent in 3 attempts of at most 50ms each/);
    expect(out.error!.message).toMatch(/lock timeout.*pid \d+ \w+ holds AccessShareLock on t_spent\.workspaces/);
    expect(out.error!.hint).toMatch(/long transaction holds a lock/);
    expect(out.attempts).toBe(3);
  });

  it('Ctrl-C while a migration waits between lock attempts is INTERRUPTED (run again), not a failed file to fix', async () => {
    const { c, db, blocker, migrations } = await busyArchive('intr', 't_intr');
    const cfg: Config = { ...config, migrations: { ...config.migrations, lockTimeout: '100ms', retries: 50 } };
    const ctl = new AbortController();
    const out = await migrateTarget(c, schemaTarget(db, 't_intr'), migrations, {
      config: cfg,
      retryBaseMs: 50,
      signal: ctl.signal,
      onEvent: (e) => (e.type === 'retry' && e.attempt >= 2 ? ctl.abort() : undefined),
    });
    await blocker.query('rollback');
    expect(out.error).toMatchObject({ code: 'INTERRUPTED', migration: '0002_archive', hint: 'run migrate up again to continue' });
    expect(out.error!.message).toMatch(/^interrupted while 0002_archive waited for a lock \(\d+ attempts\); nothing of it was applied/);
    expect(await readApplied(c, ['t_intr'])).toHaveLength(1);
  });

  it("stops retrying with TIMEOUT when the next attempt would pass the target's time budget", async () => {
    const { c, db, blocker, migrations } = await busyArchive('lockdeadline', 't_ldl');
    // Retries to spare, but 1.5s of time: attempts of 300ms fit a few times, never 51.
    const cfg: Config = { ...config, migrations: { ...config.migrations, lockTimeout: '300ms', retries: 50 } };
    const t0 = Date.now();
    const out = await migrateTarget(c, schemaTarget(db, 't_ldl'), migrations, { config: cfg, targetTimeoutMs: 1500 });
    const took = Date.now() - t0;
    await blocker.query('rollback');
    expect(out.error).toMatchObject({ code: 'TIMEOUT', migration: '0002_archive' });
    // On a loaded machine the last attempt may be cut by the target's own deadline (57014) rather
    // than by its lock wait (55P03): either way it is the budget that stopped it, said as such.
    if (out.error!.pgCode === '55P03')
      expect(out.error!.message).toMatch(
        /ran out of migrations\.targetTimeout waiting for a lock for 0002_archive in \d+ attempts of at most 300ms/,
      );
    else expect(out.error).toMatchObject({ pgCode: '57014', message: expect.stringMatching(/migrations\.targetTimeout/) });
    expect(out.attempts).toBeGreaterThan(1);
    expect(out.attempts).toBeLessThan(6);
    expect(took).toBeLessThan(1500 + 500);
    expect(await readApplied(c, ['t_ldl'])).toHaveLength(1);
  });

  it('stops with TIMEOUT when the target runs past its time budget', async () => {
    const db = await freshDatabase('timeout');
    const c = await connect(db);
    const slow = await loadMigrations(join(FIXTURES, 'slow'));
    // The session's own statement_timeout, to prove the target's budget did not stay set on it.
    const before = (await c.query('show statement_timeout')).rows[0].statement_timeout;
    expect(before).not.toBe('400ms');
    const out = await migrateTarget(c, schemaTarget(db, 't_slow'), slow, { config, targetTimeoutMs: 400 });
    expect(out.status).toBe('failed');
    expect(out.error).toMatchObject({ code: 'TIMEOUT', migration: '0001_slow', pgCode: '57014' });
    expect(out.applied).toEqual([]);
    expect(await tablesOf(c, 't_slow')).toEqual([]);
    expect((await c.query('show statement_timeout')).rows[0].statement_timeout).toBe(before);
  });

  it('migratePlacement turns an unreachable placement into an UNREACHABLE outcome', async () => {
    const fleet = new Fleet(config);
    try {
      const target = schemaTarget(`mt_${run}_missing_db`, 't_x');
      const out = await migratePlacement(fleet, target, shipped, { config });
      expect(out).toMatchObject({ status: 'failed', applied: [], error: { code: 'UNREACHABLE' } });
      expect(out.error!.message).toContain(target.database);
      expect(out.error!.message).not.toContain(inject('fleetPassword'));
      const db = await freshDatabase('placement');
      const ok = await migratePlacement(fleet, schemaTarget(db, 't_ok'), shipped, { config });
      expect(ok).toMatchObject({ status: 'succeeded', applied: shipped.map((m) => m.id) });
    } finally {
      await fleet.close();
    }
  });

  it('is skipped when interrupted before it starts', async () => {
    const db = await freshDatabase('abort');
    const c = await connect(db);
    const ac = new AbortController();
    ac.abort();
    const out = await migrateTarget(c, schemaTarget(db, 't_abort'), shipped, { config, signal: ac.signal });
    expect(out).toMatchObject({ status: 'skipped', reason: 'interrupted', applied: [] });
  });
});

describe('pool targets: row-level security', () => {
  let db: string;
  let c: pg.Client;
  const keyA = randomUUID();
  const keyB = randomUUID();

  beforeAll(async () => {
    db = await freshDatabase('pool');
    c = await connect(db);
  });

  it('enables RLS with both tenantctl policies on every tenant-scoped table (no FORCE: tenantctl owns them)', async () => {
    const out = await migrateTarget(c, poolTarget(db), shipped, { config });
    expect(out.error).toBeUndefined();
    expect(out.protectedTables).toEqual(['comments', 'projects', 'tasks', 'users', 'workspaces']);
    const states = await rlsState(c, 'app', config);
    for (const s of states) {
      expect(s).toMatchObject({ enabled: true, forced: false, adminPolicy: 'true', adminCheck: 'true', adminRoles: [s.admin] });
      expect(s.policy).toMatch(new RegExp(`^\\(?${s.column} = `));
      expect(s.check).toBe(s.policy);
    }
    expect(states.find((s) => s.table === 'workspaces')!.column).toBe('id');
    expect(await rlsNeedsApply(c, 'app', config)).toBe(false);
    const shared = await c.query(`select relrowsecurity from pg_class where oid = 'app.task_statuses'::regclass`);
    expect(shared.rows[0].relrowsecurity).toBe(false);
  });

  it('hides tenant A’s rows from the serving role when the setting is B’s key', async () => {
    await c.query(`insert into app.workspaces (id, name) values ($1, 'A'), ($2, 'B')`, [keyA, keyB]);
    await c.query(`insert into app.users (tenant_id, email, display_name) values ($1, 'a@a.test', 'Ann'), ($2, 'b@b.test', 'Bob')`, [
      keyA,
      keyB,
    ]);
    const role = config.servingRole;
    const url = new URL(shard.url);
    url.username = role.name;
    url.password = encodeURIComponent(role.password ?? '');
    const app = await connect(db, url.toString());

    // No setting: nothing is visible, and no error either.
    expect((await app.query('select * from app.users')).rows).toEqual([]);

    await app.query('select set_config($1, $2, false)', [config.rls.setting, keyB]);
    const users = await app.query('select tenant_id, email from app.users');
    expect(users.rows).toEqual([{ tenant_id: keyB, email: 'b@b.test' }]);
    const ws = await app.query('select id from app.workspaces');
    expect(ws.rows).toEqual([{ id: keyB }]);
    // Shared reference data is readable by every tenant.
    expect((await app.query('select count(*)::int as n from app.task_statuses')).rows[0].n).toBe(5);
    // Writing into another tenant is refused by WITH CHECK.
    await expect(
      app.query(`insert into app.users (tenant_id, email, display_name) values ($1, 'x@x.test', 'X')`, [keyA]),
    ).rejects.toMatchObject({ code: '42501' });
    // Updates cannot reach A's rows.
    const upd = await app.query(`update app.users set display_name = 'hacked' where tenant_id = $1`, [keyA]);
    expect(upd.rowCount).toBe(0);

    // A transaction-local setting that ended leaves '' behind: still no rows, not an error.
    await app.query('begin');
    await app.query('select set_config($1, $2, true)', [config.rls.setting, keyA]);
    expect((await app.query('select email from app.users')).rows).toEqual([{ email: 'a@a.test' }]);
    await app.query('commit');
    await app.query('select set_config($1, $2, false)', [config.rls.setting, '']);
    expect((await app.query('select * from app.users')).rows).toEqual([]);
  });

  it('re-running repairs RLS changed by hand', async () => {
    await c.query('alter table app.tasks force row level security');
    await c.query(`drop policy tenantctl_admin on app.users`);
    await c.query(`drop policy ${POLICY_NAME} on app.comments`);
    const out = await migrateTarget(c, poolTarget(db), shipped, { config });
    expect(out).toMatchObject({ status: 'succeeded', applied: [] });
    const states = await rlsState(c, 'app', config);
    expect(states.filter((s) => s.forced || !s.policy || s.adminPolicy !== 'true')).toEqual([]);
    expect(states.length).toBe(5);
  });

  it('ensureServingRole is idempotent and safe when many run at once', async () => {
    const name = `mt_${run}_role`;
    const cfg = { servingRole: { name, password: 'pw-one' } };
    const conns = await Promise.all([0, 1, 2, 3].map(() => connect('postgres')));
    try {
      const states = await Promise.all(conns.map((cc) => ensureServingRole(cc, cfg)));
      expect(states.filter((s) => s.created).length).toBeLessThanOrEqual(1);
      const { rows } = await admin.query(
        'select rolcanlogin, rolsuper, rolbypassrls, rolcreatedb, rolcreaterole from pg_roles where rolname = $1',
        [name],
      );
      expect(rows).toEqual([{ rolcanlogin: true, rolsuper: false, rolbypassrls: false, rolcreatedb: false, rolcreaterole: false }]);
      expect(await ensureServingRole(admin, cfg)).toEqual({ created: false, bypassesRls: false });
    } finally {
      await admin.query(`drop role if exists ${ident(name)}`);
    }
  });
});

describe('tenant key types', () => {
  for (const type of ['uuid', 'bigint', 'text'] as const) {
    it(`applies cleanly with a ${type} key, RLS included`, async () => {
      const db = await freshDatabase(`key_${type}`);
      const c = await connect(db);
      const cfg: Config = { ...config, tenantKey: { ...config.tenantKey, type } };
      const out = await migrateTarget(c, poolTarget(db), shipped, { config: cfg });
      expect(out.error).toBeUndefined();
      expect(out.applied).toHaveLength(shipped.length);
      const { rows } = await c.query<{ table_name: string; column_name: string; data_type: string }>(
        `select table_name, column_name, data_type from information_schema.columns
          where table_schema = 'app' and column_name in ('tenant_id', 'id') and table_name <> 'task_statuses'
            and (column_name = 'tenant_id' or table_name = 'workspaces') order by 1`,
      );
      expect(rows.map((r) => r.data_type)).toEqual(Array(5).fill(type === 'uuid' ? 'uuid' : type));
      const key = type === 'uuid' ? randomUUID() : type === 'bigint' ? '42' : 'acme';
      await c.query(`insert into app.workspaces (id, name) values ($1, 'W')`, [key]);
      const states = await rlsState(c, 'app', cfg);
      expect(states.length).toBe(5);
      expect(states.every((s) => s.enabled && !s.forced && s.adminPolicy === 'true' && s.policy?.includes('NULLIF(current_setting'))).toBe(
        true,
      );
      // PostgreSQL's rendering of the policy is recognised, so a re-run leaves the tables alone.
      expect(await rlsNeedsApply(c, 'app', cfg)).toBe(false);
    });
  }
});

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
