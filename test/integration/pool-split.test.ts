import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PART_MIN_ROWS } from '../../src/copy/pool-load-split.js';
import { databaseUrl } from '../../src/fleet/connection-url.js';
import { latestMove } from '../../src/move/record.js';
import { appUrl } from '../helpers/app-url.js';
import { json, ownMigrateFleet, tenantDigests, until, withPg, type MigrateEnv } from '../helpers/migrate-env.js';
import { seed, tenant } from '../helpers/seed.js';
import { superuserUrl } from '../helpers/test-fleet.js';

/**
 * The pool move without the grant (row by row, big tables loaded in parts on two connections:
 * src/move/pool-split.ts, src/copy/pool-load-split.ts) with a schema of the user's own, and with
 * a hostile neighbour at the target while the parts commit. A private fleet (us1, eu1): the
 * grant is taken away on its clusters for the whole file, which the shared fleet must not see.
 */
const { env, fleet } = ownMigrateFleet();
const FIXTURES = fileURLToPath(new URL('../fixtures/split-schema', import.meta.url));
const KEY = { column: 'org', type: 'text' as const, tables: { orgs: 'id' }, shared: { plans: 'read' as const } };
/** Rows of the one big table: PART_MIN_ROWS, so it loads in two parts (more rows only cost time). */
const BIG = PART_MIN_ROWS;
/** tenantctl's backends waiting for a lock on the table $1 (this file's own fleet: only its move runs there). */
const WAITING = `select count(*)::int as n from pg_locks l join pg_stat_activity a using (pid)
  where not l.granted and l.relation = $1::regclass and a.usename = 'tenantctl'`;

const su = (shard: string, sql: string) =>
  withPg(superuserUrl(databaseUrl(fleet().config.shards.find((s) => s.name === shard)!.url, 'postgres')), (c) => c.query(sql));
beforeAll(async () => {
  for (const shard of ['us1', 'eu1']) await su(shard, 'revoke set on parameter session_replication_role from tenantctl');
});
afterAll(async () => {
  for (const shard of ['us1', 'eu1'])
    await su(shard, 'grant set on parameter session_replication_role to tenantctl').catch(() => undefined);
});

async function moveToEu1(e: MigrateEnv, slug: string, extra: NodeJS.ProcessEnv = {}, onSpawn?: (pid: number) => void) {
  return e.cli(['move', slug, '--to-shard', 'eu1', '--yes', '--json'], { env: extra, onSpawn });
}

/** A client on the URL `resolve` prints for the tenant (its setting in the URL's options). */
async function asApp(e: MigrateEnv, slug: string): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: (await appUrl(e, slug)).url });
  c.on('error', () => undefined);
  await c.connect();
  return c;
}

describe('a schema of its own: text key `org`, a table partitioned by date, a shared table, a view and a function', () => {
  /** The org, 20 members (shared plans referenced) and `n` visits over both years' partitions. */
  async function seedOrg(e: MigrateEnv, slug: string, n: number) {
    const t = (await tenant(e, slug))!;
    const q = (sql: string) => e.q(t.shard, t.database_name, sql, [t.key]);
    await q(`insert into app.orgs (id, name) values ($1, 'org ' || $1)`);
    await q(
      `insert into app.members (org, email, plan) select $1, 'm' || i || '@ex.com', case when i % 2 = 0 then 'pro' else 'basic' end from generate_series(1, 20) i`,
    );
    await e.q(
      t.shard,
      t.database_name,
      `insert into app.visits (org, day, member, n)
        select $1, date '2026-01-01' + j % 600, m.id, j
          from generate_series(0, $2 - 1) j
          join (select id, row_number() over (order by id) - 1 as k from app.members where org = $1) m on m.k = j / 600 % 20`,
      [t.key, n],
    );
  }
  const plans = (e: MigrateEnv, shard: string) =>
    e.q(shard, `pool_${e.name}`, 'select code, label from app.plans order by code').then((r) => JSON.stringify(r));
  const visitsAt = (e: MigrateEnv, shard: string, key: string) =>
    e.q(shard, `pool_${e.name}`, 'select count(*)::int as n from app.visits where org = $1', [key]).then((r) => r[0].n as number);

  it('moves without the grant in parts (the partitioned table in two), same hashes; the app reads and writes through resolve; the shared table and other tenants untouched', async () => {
    const e = await env('psown', { tenantKey: KEY, migrationsFrom: FIXTURES });
    await e.create([
      { slug: 'ps-a', model: 'pool', shard: 'us1' },
      { slug: 'ps-b', model: 'pool', shard: 'us1' },
      { slug: 'ps-eu', model: 'pool', shard: 'eu1' },
    ]);
    await seedOrg(e, 'ps-a', BIG);
    await seedOrg(e, 'ps-b', 50);
    await seedOrg(e, 'ps-eu', 50);
    const before = await tenantDigests(e, 'ps-a');
    const others = { b: await tenantDigests(e, 'ps-b'), eu: await tenantDigests(e, 'ps-eu') };
    const shared = { us1: await plans(e, 'us1'), eu1: await plans(e, 'eu1') };
    const key = (await tenant(e, 'ps-a'))!.key;

    const r = await moveToEu1(e, 'ps-a');
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const doc = json(r);
    // The shared table is not copied; the partitioned one loads in two parts, row by row.
    expect(doc.tables.map((t: any) => [t.table, t.parts, t.foreignKeys])).toEqual([
      ['orgs', 1, 'row by row'],
      ['members', 1, 'row by row'],
      ['visits', 2, 'row by row'],
    ]);
    expect(doc.foreignKeyCheck.why).toMatch(/; the big tables loaded in 2 parts at once, /);
    expect(await tenantDigests(e, 'ps-a')).toEqual(before);
    expect((await tenant(e, 'ps-a'))!).toMatchObject({ shard: 'eu1', status: 'active' });
    const done = await e.cli(['move', 'complete', 'ps-a', '--yes', '--json']);
    expect(done.code, done.stdout + done.stderr).toBe(0);
    expect(await visitsAt(e, 'us1', key)).toBe(0);
    expect(await visitsAt(e, 'eu1', key)).toBe(BIG);

    // The application, unqualified through the URL resolve prints: the view, the function, both partitions.
    const app = await asApp(e, 'ps-a');
    try {
      expect((await app.query('select members::int as n from member_counts')).rows).toEqual([{ n: 20 }]);
      const total = Number((await app.query('select visit_total() as t')).rows[0].t);
      expect(total).toBe((BIG * (BIG - 1)) / 2);
      const m = (await app.query(`insert into members (org, email, plan) values ($1, 'new@ex.com', 'pro') returning id`, [key])).rows[0].id;
      await app.query(`insert into visits (org, day, member, n) values ($1, '2027-12-31', $2, 1), ($1, '2026-12-31', $2, 1)`, [key, m]);
      await app.query('update visits set n = n + 1 where member = $1', [m]);
      expect((await app.query('select count(*)::int as n from visits')).rows[0].n).toBe(BIG + 2);
      expect((await app.query('select members::int as n from member_counts')).rows).toEqual([{ n: 21 }]);
    } finally {
      await app.end();
    }
    // The shared rows are the same at both ends (neither copied nor deleted); the neighbours' hashes too.
    expect({ us1: await plans(e, 'us1'), eu1: await plans(e, 'eu1') }).toEqual(shared);
    expect({ b: await tenantDigests(e, 'ps-b'), eu: await tenantDigests(e, 'ps-eu') }).toEqual(others);
  });
});

describe('a hostile neighbour at the target while the parts commit', () => {
  it("another tenant, through its resolve URL, sees nothing of the moving key's committed rows, and its table lock and long transaction only hold the load up until they end: the move completes, same hashes", async () => {
    const e = await env('pshost');
    await e.create([
      { slug: 'hm', model: 'pool', shard: 'us1' },
      { slug: 'hn', model: 'pool', shard: 'eu1' },
      { slug: 'hs', model: 'schema', shard: 'eu1' },
    ]);
    // PART_MIN_ROWS tasks and comments: both load in two parts.
    await seed(e, 'hm', BIG, 'hm');
    await seed(e, 'hn', 20, 'hn');
    await seed(e, 'hs', 20, 'hs');
    const moving = (await tenant(e, 'hm'))!;
    const before = await tenantDigests(e, 'hm');
    const theirs = { hn: await tenantDigests(e, 'hn'), hs: await tenantDigests(e, 'hs') };
    const atEu1 = (sql: string, params: unknown[]) => e.q('eu1', `pool_${e.name}`, sql, params).then((r) => r[0].n as number);

    // The pool neighbour's application: a long transaction holding its own rows, open before the move and after it.
    const longTx = await asApp(e, 'hn');
    const reader = await asApp(e, 'hn');
    const locker = await asApp(e, 'hn');
    await longTx.query('begin isolation level repeatable read');
    const own = (await longTx.query('select id from tasks for update')).rowCount;
    expect(own).toBe(20);
    // A schema tenant of the target shard, with its own role: not even into the pool's database.
    const hs = new URL((await appUrl(e, 'hs')).url);
    hs.pathname = `/pool_${e.name}`;
    await expect(withPg(hs.toString(), (c) => c.query('select 1'))).rejects.toMatchObject({ code: '42501' });

    // The last table locked against the load's inserts before the move starts, by the role every
    // pool tenant connects as (it may UPDATE the table, so it may lock it).
    await locker.query('begin');
    await locker.query('lock table comments in share mode');
    const run = moveToEu1(e, 'hm');
    try {
      // The load waits on that lock with the parents and tasks committed at the target, not switched.
      await until(async () => (await atEu1(WAITING, ['app.comments'])) > 0, 60_000);
      expect(await atEu1('select count(*)::int as n from app.tasks where tenant_id = $1', [moving.key])).toBe(BIG);
      expect(await atEu1('select count(*)::int as n from app.comments where tenant_id = $1', [moving.key])).toBe(0);
      // Nothing of the committed rows reaches the neighbour, in a new statement or its long transaction.
      for (const sql of [
        'select count(*)::int as n from tasks where tenant_id = $1',
        'select count(*)::int as n from workspaces where id = $1',
        'select count(*)::int as n from users where tenant_id = $1',
      ]) {
        expect((await reader.query(sql, [moving.key])).rows[0].n, sql).toBe(0);
        expect((await longTx.query(sql, [moving.key])).rows[0].n, sql).toBe(0);
      }
      expect((await reader.query('select count(*)::int as n from tasks')).rows[0].n).toBe(20);
      // Nor can it write under the moving key, or delete its rows.
      await expect(reader.query(`insert into workspaces (id, name) values ($1, 'x')`, [moving.key])).rejects.toMatchObject({
        code: '42501',
      });
      expect((await reader.query('delete from tasks where tenant_id = $1', [moving.key])).rowCount).toBe(0);
      await locker.query('commit');
    } finally {
      await locker.query('rollback').catch(() => undefined);
    }
    const r = await run;
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(json(r).tables.map((t: any) => [t.table, t.parts])).toEqual([
      ['workspaces', 1],
      ['users', 1],
      ['projects', 1],
      ['tasks', 2],
      ['comments', 2],
    ]);
    expect(await tenantDigests(e, 'hm')).toEqual(before);
    // The long transaction still sees only its own rows, and commits.
    expect((await longTx.query('select count(*)::int as n from tasks where tenant_id = $1', [moving.key])).rows[0].n).toBe(0);
    await longTx.query('commit');
    for (const c of [longTx, reader, locker]) await c.end();
    expect({ hn: await tenantDigests(e, 'hn'), hs: await tenantDigests(e, 'hs') }).toEqual(theirs);
  });
});

describe('the verification of a load in parts', () => {
  it("needs only the target once every part has committed: the source's side was measured in the snapshot during the load, so the snapshot's connections ended before the verify phase do not stop the move (same hashes); a row missing at the target is still caught", async () => {
    const e = await env('psverify');
    await e.create([
      { slug: 'vm', model: 'pool', shard: 'us1' },
      { slug: 'vn', model: 'pool', shard: 'eu1' },
    ]);
    await seed(e, 'vm', BIG, 'vm');
    await seed(e, 'vn', 20, 'vn');
    const before = await tenantDigests(e, 'vm');
    const theirs = await tenantDigests(e, 'vn');

    // The target's side is measured after the rows are in: a row deleted there before it is caught.
    const gone = await moveToEu1(e, 'vm', { TENANTCTL_FAULT: 'move.verify:tamper-missing' });
    expect(gone.code, gone.stdout + gone.stderr).toBe(1);
    const doc = json(gone);
    expect(doc.error.code).toBe('MOVE_VERIFY');
    const short = doc.tables.filter((x: any) => x.source.hash !== x.target.hash);
    expect(short.map((x: any) => [x.table, x.source.rows - x.target.rows, x.parts])).toEqual([['comments', 1, 2]]);
    expect((await tenant(e, 'vm'))!).toMatchObject({ shard: 'us1', status: 'active' });

    // Paused before the verify phase, every connection of the source still in the copy's snapshot
    // is ended by the server: the old order measured the source only then, and failed.
    const dir = await mkdtemp(join(tmpdir(), 'tenantctl-psverify-'));
    const resume = join(dir, 'resume');
    try {
      const run = moveToEu1(e, 'vm', { TENANTCTL_FAULT: 'move.verify:resume', TENANTCTL_FAULT_RESUME_FILE: resume });
      await until(async () => {
        const op = await latestMove(e.db, 'vm');
        return op?.status === 'running' && (op.progress as { phases?: Record<string, number> }).phases?.rebuild !== undefined;
      }, 60_000);
      const ended = await su(
        'us1',
        `select pg_terminate_backend(pid) from pg_stat_activity
          where usename = 'tenantctl' and datname = 'pool_${e.name}' and state like 'idle in transaction%' and backend_xmin is not null`,
      );
      expect(ended.rowCount).toBeGreaterThan(0);
      await writeFile(resume, '');
      const r = await run;
      expect(r.code, r.stdout + r.stderr).toBe(0);
      expect(json(r).tables.map((t: any) => [t.table, t.parts, t.source.hash === t.target.hash])).toEqual([
        ['workspaces', 1, true],
        ['users', 1, true],
        ['projects', 1, true],
        ['tasks', 2, true],
        ['comments', 2, true],
      ]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    expect((await tenant(e, 'vm'))!).toMatchObject({ shard: 'eu1', status: 'active' });
    expect(await tenantDigests(e, 'vm')).toEqual(before);
    expect(await tenantDigests(e, 'vn')).toEqual(theirs);
  });
});

describe('a neighbour that never lets go of its table lock', () => {
  it('the load gives up after --lock-wait and names the holder (pid, role, application); the cleanup waits no longer either; the tenant stays on its source, its app writes, and move rollback clears the committed parts once the lock is gone (a bad --lock-wait: BAD_INPUT, nothing starts)', async () => {
    const e = await env('pslock');
    // A bad --lock-wait is refused before anything starts.
    for (const bad of ['soon', '0s', '5']) {
      const r = await e.cli(['move', 'lm', '--to-shard', 'eu1', '--yes', '--lock-wait', bad]);
      expect(r.code, r.stdout + r.stderr).toBe(2);
      expect(r.stderr).toContain(`--lock-wait ${bad} is not a duration`);
    }
    await e.create([
      { slug: 'lm', model: 'pool', shard: 'us1' },
      { slug: 'ln', model: 'pool', shard: 'eu1' },
    ]);
    await seed(e, 'lm', BIG, 'lm');
    await seed(e, 'ln', 20, 'ln');
    const moving = (await tenant(e, 'lm'))!;
    const before = await tenantDigests(e, 'lm');
    const atEu1 = (sql: string) => e.q('eu1', `pool_${e.name}`, sql, [moving.key]).then((r) => r[0].n as number);

    // The pool neighbour's application locks the last table against inserts and keeps it.
    const locker = await asApp(e, 'ln');
    try {
      await locker.query('begin');
      await locker.query('lock table comments in share mode');
      const pid = (await locker.query('select pg_backend_pid() as pid')).rows[0].pid as number;
      // The shortest whole-second wait: the load and the cleanup each wait it out.
      const r = await e.cli(['move', 'lm', '--to-shard', 'eu1', '--yes', '--json', '--lock-wait', '1s']);
      expect(r.code, r.stdout + r.stderr).toBe(1);
      const err = json(r).error;
      expect(err.code).toBe('MOVE_FAILED');
      expect(err.message).toMatch(
        new RegExp(
          `the load into eu1's pool waited 1 s for a lock on eu1's pool tables \\(app\\) that another session holds \\(pid ${pid} app_user holds ShareLock on app\\.comments \\(application ln\\)\\), and stopped there$`,
        ),
      );
      // The parents and tasks had committed in their parts; the cleanup met the same lock and gave up
      // after the same 1 s instead of waiting for the neighbour: they are left for move rollback.
      expect(await atEu1('select count(*)::int as n from app.tasks where tenant_id = $1')).toBe(BIG);
      expect(await atEu1('select count(*)::int as n from app.comments where tenant_id = $1')).toBe(0);
      expect((await tenant(e, 'lm'))!).toMatchObject({ shard: 'us1', status: 'active' });
      const app = await asApp(e, 'lm');
      try {
        expect((await app.query(`update tasks set title = title where true`)).rowCount).toBe(BIG);
      } finally {
        await app.end();
      }
    } finally {
      await locker.query('rollback').catch(() => undefined);
      await locker.end();
    }
    const back = await e.cli(['move', 'rollback', 'lm', '--yes', '--json']);
    expect(back.code, back.stdout + back.stderr).toBe(0);
    expect(json(back).cleaned).toEqual([expect.stringMatching(/^removed the partial copy at eu1\//)]);
    expect(await atEu1('select count(*)::int as n from app.tasks where tenant_id = $1')).toBe(0);
    expect(await atEu1('select count(*)::int as n from app.workspaces where id = $1')).toBe(0);
    expect(await tenantDigests(e, 'lm')).toEqual(before);
  });
});

describe('a restore into a pool behind a neighbour that never lets go', () => {
  it('restore --as into the pool gives up after --lock-wait, names the holder, and changes nothing: no tenant, no rows, the neighbour untouched', async () => {
    const e = await env('psrlock');
    await e.create([
      { slug: 'rk', model: 'pool', shard: 'eu1' },
      { slug: 'rn', model: 'pool', shard: 'eu1' },
    ]);
    await seed(e, 'rk', 20, 'rk');
    await seed(e, 'rn', 20, 'rn');
    const b = await e.cli(['backup', 'create', 'rk', '--json']);
    expect(b.code, b.stderr + b.stdout).toBe(0);
    const id = json(b).results[0].backup;
    const theirs = await tenantDigests(e, 'rn');
    const all = () => e.q('eu1', `pool_${e.name}`, 'select count(*)::int as n from app.tasks').then((r) => r[0].n as number);
    const tasks = await all();

    const locker = await asApp(e, 'rn');
    try {
      await locker.query('begin');
      await locker.query('lock table tasks in share mode');
      const pid = (await locker.query('select pg_backend_pid() as pid')).rows[0].pid as number;
      const r = await e.cli(['restore', id, '--as', 'rk-copy', '--json', '--lock-wait', '1s']);
      expect(r.code, r.stdout + r.stderr).toBe(1);
      const err = json(r).result.error;
      expect(err.code).toBe('RESTORE_FAILED');
      expect(err.message).toMatch(
        new RegExp(`the restore into eu1's pool waited 1 s .*pid ${pid} app_user holds ShareLock on app\\.tasks \\(application rn\\)`),
      );
    } finally {
      await locker.query('rollback').catch(() => undefined);
      await locker.end();
    }
    expect(await tenant(e, 'rk-copy')).toBeUndefined();
    expect(await all()).toBe(tasks);
    expect(await tenantDigests(e, 'rn')).toEqual(theirs);
  });
});
