import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/types.js';
import { databaseUrl } from '../../src/fleet/connection-url.js';
import { migrateTarget, type KnownState, type MigrateEvent, type MigrationTarget } from '../../src/migrate/apply-target.js';
import { loadMigrations, type MigrationFile } from '../../src/migrate/files.js';
import { pendingFor, readApplied } from '../../src/migrate/tracking.js';
import { ident } from '../../src/sql.js';
import { dropDatabasesAsSuperuser } from '../helpers/test-fleet.js';

/**
 * migrateTarget with `known` (the state migrate up read before its fan-out): a target goes in one
 * round trip, and every surprise falls back to the step-by-step path. Fresh databases on the
 * shared fleet, dropped at the end.
 */
const config = loadConfig({ file: inject('fleetConfigFile') });
const shard = config.shards[0];
const run = randomBytes(3).toString('hex');
const dbName = `ort_${run}`;
const clients: pg.Client[] = [];
let dir: string;
let base: MigrationFile[];

async function connect(): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: databaseUrl(shard.url, dbName) });
  await c.connect();
  clients.push(c);
  return c;
}

const target = (schema: string): MigrationTarget => ({ model: 'schema', shard: shard.name, database: dbName, schema });

/** Bring a schema to the shipped head, then return the state migrate up would have read. */
async function atHead(c: pg.Client, schema: string, all: MigrationFile[]): Promise<KnownState> {
  expect((await migrateTarget(c, target(schema), base, { config })).status).toBe('succeeded');
  return known(c, schema, all);
}

async function known(c: pg.Client, schema: string, all: MigrationFile[]): Promise<KnownState> {
  const rows = await readApplied(c, [schema]);
  const r = pendingFor(all, rows);
  return { applied: rows.map((x) => x.name), pending: r.pending, unknown: r.unknown };
}

async function folder(extra: Record<string, string>): Promise<MigrationFile[]> {
  const d = await mkdtemp(join(dir, 'm-'));
  for (const m of base) await writeFile(join(d, `${m.id}.sql`), m.sql!);
  for (const [name, sql] of Object.entries(extra)) await writeFile(join(d, name), sql);
  return loadMigrations(d);
}

/** No lock, no open transaction, no session setting left on the connection. */
async function expectClean(c: pg.Client): Promise<void> {
  const pid = (c as unknown as { processID: number }).processID;
  const admin = await connect();
  const locks = await admin.query(`select count(*)::int as n from pg_locks where locktype = 'advisory' and pid = $1`, [pid]);
  expect(locks.rows[0].n).toBe(0);
  expect((await c.query('select 1 as one')).rows[0].one).toBe(1);
  expect((await c.query('show search_path')).rows[0].search_path).toBe('"$user", public');
  expect((await c.query('show statement_timeout')).rows[0].statement_timeout).toBe('0');
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tenantctl-ort-'));
  base = await loadMigrations(config.migrationsDir);
  const admin = new pg.Client({ connectionString: shard.url });
  await admin.connect();
  await admin.query(`create database ${ident(dbName)}`);
  await admin.end();
});

afterAll(async () => {
  await Promise.all(clients.splice(0).map((c) => c.end().catch(() => undefined)));
  await dropDatabasesAsSuperuser(shard.url, [dbName]);
  await rm(dir, { recursive: true, force: true });
});

describe('migrateTarget with a known state (one round trip)', () => {
  it('applies every pending migration in one message, each with its tracking row, and leaves the connection clean', async () => {
    const c = await connect();
    const all = await folder({
      '0004_archive.sql': 'alter table workspaces add column archived_at timestamptz;\n-- a trailing comment without a newline',
      '0005_index.sql': 'create index workspaces_archived_idx on workspaces (archived_at);\n',
    });
    const k = await atHead(c, 't_one', all);
    let queries = 0;
    const counted = new Proxy(c, {
      get(t, p, r) {
        if (p === 'query') return (...a: unknown[]) => (queries++, (t.query as (...x: unknown[]) => unknown).apply(t, a));
        return Reflect.get(t, p, r);
      },
    });
    const events: MigrateEvent[] = [];
    const out = await migrateTarget(counted, target('t_one'), all, { config, known: k, onEvent: (e) => events.push(e) });
    expect(out.error).toBeUndefined();
    expect(out).toMatchObject({ status: 'succeeded', applied: ['0004_archive', '0005_index'], version: '0005_index' });
    expect(queries).toBe(1);
    expect(events.filter((e) => e.type === 'done').map((e) => e.migration)).toEqual(['0004_archive', '0005_index']);
    const rows = await readApplied(c, ['t_one']);
    expect(rows.map((r) => r.name)).toEqual(all.map((m) => m.id));
    expect(rows.at(-1)!.checksum).toBe(all.at(-1)!.checksum);
    await expectClean(c);
  });

  it('falls back to the step-by-step path when the target changed since it was read (nothing applied twice)', async () => {
    const c = await connect();
    const all = await folder({ '0004_archive.sql': 'alter table workspaces add column archived_at timestamptz;\n' });
    const stale = await atHead(c, 't_stale', all);
    // Another run migrates it between the read and this one.
    expect((await migrateTarget(c, target('t_stale'), all, { config })).applied).toEqual(['0004_archive']);
    const out = await migrateTarget(c, target('t_stale'), all, { config, known: stale });
    expect(out).toMatchObject({ status: 'succeeded', applied: [] });
    await expectClean(c);
  });

  it('an idempotent file applied by another run since the read: the tracking row collides, nothing is applied twice', async () => {
    const c = await connect();
    const all = await folder({
      '0004_counter.sql': 'create table if not exists counter (n int);\ninsert into counter values (1);\n',
    });
    const stale = await atHead(c, 't_twice', all);
    expect((await migrateTarget(c, target('t_twice'), all, { config })).applied).toEqual(['0004_counter']);
    // The file runs again without an error; only the tracking row's key can tell.
    const out = await migrateTarget(c, target('t_twice'), all, { config, known: stale });
    expect(out).toMatchObject({ status: 'succeeded', applied: [] });
    expect((await c.query('select count(*)::int as n from t_twice.counter')).rows[0].n).toBe(1);
    await expectClean(c);
  });

  it("under the tenant's lock, the message takes no advisory lock and reads no tracking history (one statement per step)", async () => {
    const c = await connect();
    const all = await folder({ '0004_archive.sql': 'alter table workspaces add column archived_at timestamptz;\n' });
    const k = await atHead(c, 't_cheap', all);
    const texts: string[] = [];
    const seen = new Proxy(c, {
      get(t, p, r) {
        if (p === 'query') return (...a: unknown[]) => (texts.push(String(a[0])), (t.query as (...x: unknown[]) => unknown).apply(t, a));
        return Reflect.get(t, p, r);
      },
    });
    const out = await migrateTarget(seen, target('t_cheap'), all, { config, known: k, tenantLocked: true });
    expect(out).toMatchObject({ status: 'succeeded', applied: ['0004_archive'] });
    expect(texts).toHaveLength(1);
    expect(texts[0]).not.toMatch(/advisory/);
    expect(texts[0]).not.toMatch(/count\(/);
    // begin; settings and guard; the file; the tracking row; commit.
    expect(texts[0].split(';').filter((x) => x.trim() !== '')).toHaveLength(5);
    await expectClean(c);
  });

  it('waits for a busy target lock like the step-by-step path does', async () => {
    const [c, holder] = await Promise.all([connect(), connect()]);
    const all = await folder({ '0004_archive.sql': 'alter table workspaces add column archived_at timestamptz;\n' });
    const k = await atHead(c, 't_busy', all);
    await holder.query(`select pg_advisory_lock(${0x746e6374}, hashtext('t_busy'))`);
    const locked = await migrateTarget(c, target('t_busy'), all, { config, known: k, lockWaitMs: 150 });
    expect(locked.error).toMatchObject({ code: 'LOCKED' });
    const later = migrateTarget(c, target('t_busy'), all, { config, known: k, lockWaitMs: 5000 });
    setTimeout(() => void holder.query(`select pg_advisory_unlock(${0x746e6374}, hashtext('t_busy'))`), 200);
    expect(await later).toMatchObject({ status: 'succeeded', applied: ['0004_archive'] });
    await expectClean(c);
  });

  it('a failing second migration: the first stays applied, the error names the file and line, the rest is pending', async () => {
    const c = await connect();
    const all = await folder({
      '0004_archive.sql': 'alter table workspaces add column archived_at timestamptz;\n',
      '0005_broken.sql': '-- adds a column\nalter table workspaces\n  add column x int;\nselect nope from workspaces;\n',
      '0006_after.sql': 'alter table workspaces add column after_broken int;\n',
    });
    const k = await atHead(c, 't_fail', all);
    const out = await migrateTarget(c, target('t_fail'), all, { config, known: k });
    expect(out.status).toBe('failed');
    expect(out.applied).toEqual(['0004_archive']);
    expect(out.pending).toEqual(['0005_broken', '0006_after']);
    expect(out.error).toMatchObject({ code: 'MIGRATION_FAILED', migration: '0005_broken', pgCode: '42703' });
    expect(out.error!.message).toContain('column "nope" does not exist');
    expect(out.error!.message).toContain('0005_broken.sql line 4');
    expect(out.version).toBe('0004_archive');
    const cols = await c.query(
      `select column_name from information_schema.columns where table_schema = 't_fail' and table_name = 'workspaces' and column_name in ('archived_at', 'x', 'after_broken')`,
    );
    expect(cols.rows.map((r) => r.column_name)).toEqual(['archived_at']);
    expect((await readApplied(c, ['t_fail'])).map((r) => r.name)).not.toContain('0005_broken');
    await expectClean(c);
  });

  it('a lock timeout inside the message is retried by the step-by-step path', async () => {
    const [c, blocker] = await Promise.all([connect(), connect()]);
    const all = await folder({ '0004_archive.sql': 'alter table workspaces add column archived_at timestamptz;\n' });
    const k = await atHead(c, 't_retry', all);
    await blocker.query('begin');
    await blocker.query('lock table t_retry.workspaces in access share mode');
    setTimeout(() => void blocker.query('commit'), 300);
    const cfg: Config = { ...config, migrations: { ...config.migrations, lockTimeout: '100ms', retries: 5 } };
    const events: MigrateEvent[] = [];
    const out = await migrateTarget(c, target('t_retry'), all, { config: cfg, known: k, retryBaseMs: 100, onEvent: (e) => events.push(e) });
    expect(out.error).toBeUndefined();
    expect(out.applied).toEqual(['0004_archive']);
    expect(events.some((e) => e.type === 'retry')).toBe(true);
    // The message's attempt counts: the first retry is attempt 2, after a gap of the schedule.
    const retries = events.filter((e) => e.type === 'retry');
    expect(retries[0]).toMatchObject({ attempt: 1, migration: '0004_archive', pgCode: '55P03' });
    expect(out.attempts).toBe(1 + retries.length);
    await expectClean(c);
  });

  it('takes a never-migrated target in one message, but never with its schema missing (search_path would fall to public)', async () => {
    const c = await connect();
    await c.query('create schema t_fresh');
    const fresh = await migrateTarget(c, target('t_fresh'), base, {
      config,
      known: { applied: [], pending: base, unknown: [], tracked: true },
    });
    expect(fresh).toMatchObject({ status: 'succeeded', applied: base.map((m) => m.id) });
    // No schema at all: the guard sends it down the step-by-step path, which creates it.
    const out = await migrateTarget(c, target('t_missing'), base, {
      config,
      known: { applied: [], pending: base, unknown: [], tracked: true },
    });
    expect(out).toMatchObject({ status: 'succeeded', applied: base.map((m) => m.id) });
    const tables = await c.query(
      `select table_schema, count(*)::int as n from information_schema.tables where table_schema in ('public', 't_missing', 't_fresh') group by 1 order by 1`,
    );
    expect(tables.rows).toEqual([
      { table_schema: 't_fresh', n: 6 },
      { table_schema: 't_missing', n: 6 },
    ]);
    await expectClean(c);
  });

  it('is not used for targets it cannot take in one message (no-transaction or module migrations)', async () => {
    const c = await connect();
    const all = await folder({
      '0004_events_idx.sql':
        '-- tenantctl:no-transaction\ncreate index concurrently if not exists workspaces_name_idx on workspaces (name);\n',
    });
    const k = await atHead(c, 't_conc', all);
    const out = await migrateTarget(c, target('t_conc'), all, { config, known: k });
    expect(out.error).toBeUndefined();
    expect(out.applied).toEqual(['0004_events_idx']);
    await expectClean(c);
  });
});
