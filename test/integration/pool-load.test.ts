import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { json, ownMigrateFleet, until, withPg, type MigrateEnv, tenantDigests } from '../helpers/migrate-env.js';
import { superuserUrl } from '../helpers/test-fleet.js';
import { PART_MIN_ROWS } from '../../src/copy/pool-load-split.js';
import { databaseUrl } from '../../src/fleet/connection-url.js';
import { latestMove } from '../../src/move/record.js';
import { appUrl } from '../helpers/app-url.js';
import { seed as seedRows } from '../helpers/seed.js';

/**
 * Loads into a live pool (moves and restores) with foreign keys checked once per tenant: the
 * shard role has `SET ON PARAMETER session_replication_role` (the test fleets grant it, as `dev
 * up` does), so the per-row triggers do not fire and one anti-join per foreign key proves the
 * tenant's rows, with shared parents locked FOR KEY SHARE. Without the grant: row by row. A
 * private fleet (us1; eu1 with a live pool), the least-privileged role, the built CLI.
 */
const { env } = ownMigrateFleet();

type Tenant = { slug: string; key: string; model: string; shard: string; database_name: string; schema_name: string; status: string };
const tenant = async (e: MigrateEnv, slug: string) =>
  (await e.db.selectFrom('tenants').selectAll().where('slug', '=', slug).executeTakeFirst()) as Tenant | undefined;

/** A workspace, users, projects, `n` tasks (status `status`) and comments of the tenant. */
async function seed(e: MigrateEnv, slug: string, n: number, status = 'todo'): Promise<void> {
  const t = (await tenant(e, slug))!;
  const q = (sql: string, params: unknown[]) => e.q(t.shard, t.database_name, sql, params);
  await q('insert into app.workspaces (id, name) values ($1, $2)', [t.key, `ws ${slug}`]);
  await q(
    `insert into app.users (tenant_id, id, email, display_name)
      select $1, md5($2 || i)::uuid, 'u' || i || '@ex.com', 'User ' || i from generate_series(1, 5) i`,
    [t.key, slug],
  );
  await q(
    `insert into app.projects (tenant_id, id, name, owner_id)
      select $1, md5('p' || $2 || i)::uuid, 'Project ' || i, case when i = 1 then null else md5($2 || 1)::uuid end from generate_series(1, 5) i`,
    [t.key, slug],
  );
  await q(
    `insert into app.tasks (tenant_id, id, project_id, title, status, assignee_id)
      select $1, md5('t' || $2 || i)::uuid, md5('p' || $2 || (1 + i % 5))::uuid, 'Task ' || i, $4,
             case when i % 2 = 0 then md5($2 || 2)::uuid end from generate_series(1, $3) i`,
    [t.key, slug, n, status],
  );
  await q(
    `insert into app.comments (tenant_id, task_id, author_id, body)
      select $1, md5('t' || $2 || (1 + i % $3))::uuid, md5($2 || 1)::uuid, 'c' || i from generate_series(1, $3) i`,
    [t.key, slug, n],
  );
}

const pool = (e: MigrateEnv) => `pool_${e.name}`;
const url = (e: MigrateEnv, shard: string, db: string) => databaseUrl(e.config.shards.find((s) => s.name === shard)!.url, db);
/** As the cluster's superuser (grants only a superuser may give or take). */
const su = (e: MigrateEnv, shard: string, sql: string) => withPg(superuserUrl(url(e, shard, 'postgres')), (c) => c.query(sql));

const digests = tenantDigests;

const tasksOf = (e: MigrateEnv, shard: string, key: string) =>
  e.q(shard, pool(e), 'select count(*)::int as n from app.tasks where tenant_id = $1', [key]).then((r) => r[0].n as number);
/** Rows the user trigger on app.tasks logged for this key. */
const fired = (e: MigrateEnv, shard: string, key: string) =>
  e.q(shard, pool(e), 'select count(*)::int as n from trig.fired where tenant_id = $1', [key]).then((r) => r[0].n as number);

async function move(e: MigrateEnv, slug: string, extra: NodeJS.ProcessEnv = {}, onSpawn?: (pid: number) => void) {
  return e.cli(['move', slug, '--to-shard', 'eu1', '--yes', '--json'], { env: extra, onSpawn });
}

async function moveOk(e: MigrateEnv, slug: string) {
  const r = await move(e, slug);
  expect(r.code, r.stdout + r.stderr).toBe(0);
  return json(r);
}

async function restore(e: MigrateEnv, id: string, as: string) {
  const r = await e.cli(['restore', id, '--as', as, '--json']);
  return { r, doc: json(r) };
}

async function backupOf(e: MigrateEnv, slug: string): Promise<string> {
  const r = await e.cli(['backup', 'create', slug, '--json']);
  expect(r.code, r.stderr + r.stdout).toBe(0);
  return json(r).results[0].backup;
}

/** The `moved` event's record of how the load checked foreign keys. */
const eventsOf = async (e: MigrateEnv, slug: string, action: string): Promise<any[]> =>
  (await e.db.selectFrom('events').select('details').where('tenant_slug', '=', slug).where('action', '=', action).execute()).map(
    (x) => x.details,
  );
const movedEvent = async (e: MigrateEnv, slug: string, move: number) =>
  (await eventsOf(e, slug, 'moved')).find((d) => d.move === move)?.foreignKeyCheck;

/** What the move said, `move status` says (JSON and human) and its event recorded of the path it took and why. */
async function pathReported(e: MigrateEnv, slug: string, doc: any) {
  const st = await e.cli(['move', 'status', slug, '--json']);
  const human = await e.cli(['move', 'status', slug]);
  expect(human.code, human.stderr).toBe(0);
  return {
    doc: doc.foreignKeyCheck,
    status: json(st).move.foreignKeyCheck,
    event: await movedEvent(e, slug, doc.move),
    human: human.stdout,
  };
}

const doctorSays = async (e: MigrateEnv, shard: string) =>
  json(await e.cli(['doctor', '--json'])).checks.find((c: any) => c.check === `pool loads on ${shard}`)?.detail as string;

/** Rows of a table a row-by-row move loads in parts: exactly the threshold (more rows only cost time). */
const BIG = PART_MIN_ROWS;

/** The tenant's rows of each copied table at the eu1 pool. */
const leftAtEu1 = async (e: MigrateEnv, key: string) => {
  const out: Record<string, number> = {};
  for (const [table, col] of [
    ['workspaces', 'id'],
    ['users', 'tenant_id'],
    ['projects', 'tenant_id'],
    ['tasks', 'tenant_id'],
    ['comments', 'tenant_id'],
  ]) {
    out[table] = (await e.q('eu1', pool(e), `select count(*)::int as n from app.${table} where ${col} = $1`, [key]))[0].n;
  }
  return out;
};
const none = { workspaces: 0, users: 0, projects: 0, tasks: 0, comments: 0 };

/** The application, through the URL resolve gives it: its tasks counted and all written. */
async function appTasks(e: MigrateEnv, slug: string): Promise<number> {
  const app = await appUrl(e, slug);
  const t = (await tenant(e, slug))!;
  return withPg(app.url, async (c) => {
    await c.query('select set_config($1, $2, false)', [e.config.rls.setting, t.key]);
    return (await c.query(`update app.tasks set title = title where tenant_id = $1`, [t.key])).rowCount ?? 0;
  });
}

/**
 * Scans of a parent table at eu1's pool (this file's own fleet: nobody else loads there), as the
 * statistics have them: sequential and by index.
 */
const scansOf = async (e: MigrateEnv, table: string) => {
  const [r] = await e.q(
    'eu1',
    pool(e),
    `select seq_scan::int as seq, coalesce(idx_scan, 0)::int as idx from pg_stat_user_tables where schemaname = 'app' and relname = $1`,
    [table],
  );
  return r as { seq: number; idx: number };
};

/**
 * What a load's referential checks did to the one-page lookup table task_statuses (one check per
 * task) since `before`: waited for until the loading backends have reported at least `checks`
 * scans of it, then how many of those were sequential.
 */
async function seqStatusScansSince(e: MigrateEnv, before: { seq: number; idx: number }, checks: number): Promise<number> {
  const after = await until(async () => {
    const a = await scansOf(e, 'task_statuses');
    return a.seq + a.idx - before.seq - before.idx >= checks ? a : undefined;
  });
  return after.seq - before.seq;
}

let e: MigrateEnv;
beforeAll(async () => {
  e = await env('pl');
  await e.create([
    { slug: 'mv-fast', model: 'pool', shard: 'us1' },
    { slug: 'mv-miss', model: 'pool', shard: 'us1' },
    { slug: 'mv-slow', model: 'pool', shard: 'us1' },
    { slug: 'mv-race', model: 'pool', shard: 'us1' },
    { slug: 'rs-src', model: 'pool', shard: 'us1' },
    { slug: 'eu-live', model: 'pool', shard: 'eu1' },
    { slug: 'sp-ok', model: 'pool', shard: 'us1' },
    { slug: 'sp-bad', model: 'pool', shard: 'us1' },
    { slug: 'sp-kill', model: 'pool', shard: 'us1' },
    { slug: 'bn-a', model: 'pool', shard: 'us1' },
    { slug: 'bn-b', model: 'pool', shard: 'us1' },
  ]);
  for (const shard of ['us1', 'eu1']) {
    // Statuses only some tenants use, so a test can take one away at one end.
    await e.q(shard, pool(e), `insert into app.task_statuses (code, label, sort_order) values ('held', 'Held', 90), ('rare', 'Rare', 91)`);
    // A user trigger on a pool table: logical replication's rule (and ours) is that a copy of
    // rows does not fire it; a row-by-row load does.
    await e.q(shard, pool(e), 'create schema trig');
    await e.q(shard, pool(e), 'create table trig.fired (tenant_id uuid)');
    await e.q(
      shard,
      pool(e),
      `create function trig.log() returns trigger language plpgsql as $$ begin insert into trig.fired values (new.tenant_id); return new; end $$`,
    );
    await e.q(shard, pool(e), 'create trigger log_tasks after insert on app.tasks for each row execute function trig.log()');
  }
  await e.q('us1', pool(e), `insert into app.task_statuses (code, label, sort_order) values ('archived', 'Archived', 92)`);
  for (const s of ['mv-fast', 'mv-miss', 'mv-slow', 'rs-src', 'eu-live']) await seed(e, s, 40);
  await seed(e, 'mv-race', 40, 'held');
  // Big enough (PART_MIN_ROWS tasks and comments) for a row-by-row move to load those two tables in parts.
  for (const s of ['sp-ok', 'sp-bad', 'sp-kill']) await seed(e, s, BIG);
  await e.q('us1', pool(e), 'truncate trig.fired');
  // As a live pool's would be: the planner knows the lookup table is one page (and would scan it whole for each check).
  await e.q('eu1', pool(e), 'analyze app.task_statuses');
}, 120_000);

describe('with the grant: foreign keys checked once per tenant', () => {
  it('a pool move takes the fast path (no user trigger fires, same hashes); a row whose parent is missing at the target is refused, nothing loaded', async () => {
    expect(await doctorSays(e, 'eu1')).toBe(
      "pool loads check foreign keys once per tenant: role tenantctl may set session_replication_role: rows go in without per-row triggers, then one check per foreign key over the tenant's rows, no table locks",
    );
    const before = await digests(e, 'mv-fast');
    const live = await digests(e, 'eu-live');
    const doc = await moveOk(e, 'mv-fast');
    expect(doc.tables.map((t: any) => t.foreignKeys)).toEqual(Array(5).fill('once per tenant'));
    const said = await pathReported(e, 'mv-fast', doc);
    const fast = { path: 'once per tenant', why: expect.stringMatching(/^role tenantctl may set session_replication_role: /) };
    expect(said).toMatchObject({ doc: fast, status: fast, event: fast });
    expect(said.human).toContain('foreign keys checked once per tenant: role tenantctl may set session_replication_role');
    expect(await digests(e, 'mv-fast')).toEqual(before);
    expect(await digests(e, 'eu-live')).toEqual(live);
    const t = (await tenant(e, 'mv-fast'))!;
    expect(await tasksOf(e, 'eu1', t.key)).toBe(40);
    expect(await fired(e, 'eu1', t.key)).toBe(0);

    // 'archived' exists on us1 only: one task pointing at it cannot go to eu1.
    const m = (await tenant(e, 'mv-miss'))!;
    await e.q('us1', pool(e), `update app.tasks set status = 'archived' where tenant_id = $1 and id = md5('tmv-miss7')::uuid`, [m.key]);
    const r = await move(e, 'mv-miss');
    expect(r.code, r.stdout + r.stderr).toBe(1);
    expect(json(r).error.message).toMatch(
      /app\.tasks violate foreign key tasks_status_fkey: key \(status\)=\(archived\) is not present in app\.task_statuses at the target; nothing was loaded/,
    );
    expect(await tasksOf(e, 'eu1', m.key)).toBe(0);
    expect(await e.q('eu1', pool(e), 'select count(*)::int as n from app.workspaces where id = $1', [m.key])).toEqual([{ n: 0 }]);
    expect((await tenant(e, 'mv-miss'))!).toMatchObject({ shard: 'us1', status: 'active' });
  });

  it('a pool restore takes the fast path; a restore whose rows reference a parent deleted since is refused, nothing registered or loaded', async () => {
    const s = (await tenant(e, 'rs-src'))!;
    await e.q('us1', pool(e), `update app.tasks set status = 'rare' where tenant_id = $1`, [s.key]);
    const id = await backupOf(e, 'rs-src');
    const { r, doc } = await restore(e, id, 'rs-clone');
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(doc.result.foreignKeys).toBe('once per tenant');
    expect(doc.result.foreignKeyCheck).toEqual({
      path: 'once per tenant',
      why: expect.stringMatching(/^role tenantctl may set session_replication_role: /),
    });
    const c = (await tenant(e, 'rs-clone'))!;
    expect(await tasksOf(e, 'us1', c.key)).toBe(40);
    expect(await fired(e, 'us1', c.key)).toBe(0);
    const [src, clone] = [await digests(e, 'rs-src'), await digests(e, 'rs-clone')];
    expect(clone).toEqual(src);

    // 'rare' goes away at the target (nobody uses it any more); the archive still references it.
    for (const key of [s.key, c.key]) await e.q('us1', pool(e), `update app.tasks set status = 'todo' where tenant_id = $1`, [key]);
    await e.q('us1', pool(e), `delete from app.task_statuses where code = 'rare'`);
    const tasksBefore = (await e.q('us1', pool(e), 'select count(*)::int as n from app.tasks'))[0].n;
    const bad = await restore(e, id, 'rs-orphan');
    expect(bad.r.code).toBe(1);
    expect(bad.doc.result).toMatchObject({ status: 'failed', error: { code: 'RESTORE_FAILED' } });
    expect(bad.doc.result.error.message).toMatch(/violate foreign key tasks_status_fkey: key \(status\)=\(rare\) is not present/);
    expect(await tenant(e, 'rs-orphan')).toBeUndefined();
    expect((await e.q('us1', pool(e), 'select count(*)::int as n from app.tasks'))[0].n).toBe(tasksBefore);
  });

  it('a concurrent delete of a referenced shared parent: the load waits for it and then refuses; once checked, the parent is locked until the commit', async () => {
    const t = (await tenant(e, 'mv-race'))!;
    // A delete of 'held' under way at the target before the move checks: the move waits for it.
    await withPg(url(e, 'eu1', pool(e)), async (del) => {
      await del.query('begin');
      await del.query(`delete from app.task_statuses where code = 'held'`);
      const run = move(e, 'mv-race');
      await until(
        async () =>
          (
            await e.q(
              'eu1',
              pool(e),
              `select 1 from pg_stat_activity where wait_event_type = 'Lock' and query ilike '%for key share%' and datname = $1`,
              [pool(e)],
            )
          ).length > 0,
        60_000,
      );
      await del.query('commit');
      const r = await run;
      expect(r.code, r.stdout + r.stderr).toBe(1);
      expect(json(r).error.message).toMatch(
        /key \(status\)=\(held\) is not present in app\.task_statuses at the target; nothing was loaded/,
      );
    });
    expect(await tasksOf(e, 'eu1', t.key)).toBe(0);
    expect((await tenant(e, 'mv-race'))!.shard).toBe('us1');

    // 'held' is back; the move checks, then hangs before its commit: a delete of 'held' waits.
    await e.q('eu1', pool(e), `insert into app.task_statuses (code, label, sort_order) values ('held', 'Held', 90)`);
    let pid = 0;
    // Paused there, the process writes the point's name (fault-points.ts): checked, not committed.
    const paused = join(mkdtempSync(join(tmpdir(), 'tenantctl-pl-')), 'paused');
    const run = move(e, 'mv-race', { TENANTCTL_FAULT: 'move.before-commit', TENANTCTL_FAULT_PAUSED_FILE: paused }, (p) => (pid = p));
    await until(async () => existsSync(paused) && readFileSync(paused, 'utf8').trim() === 'move.before-commit', 60_000);
    await withPg(url(e, 'eu1', pool(e)), async (c) => {
      await c.query(`set lock_timeout = '1s'`);
      await expect(c.query(`delete from app.task_statuses where code = 'held'`)).rejects.toMatchObject({ code: '55P03' });
    });
    process.kill(pid, 'SIGKILL');
    expect((await run).signal).toBe('SIGKILL');
    // The killed move is cleaned up by the next one, which goes through.
    const doc = await moveOk(e, 'mv-race');
    expect(doc.tables.every((x: any) => x.foreignKeys === 'once per tenant')).toBe(true);
    expect(await tasksOf(e, 'eu1', t.key)).toBe(40);
  });

  it("a deferrable unique constraint (its recheck is a trigger the fast path skips) is checked after the load: a conflict with another tenant's row is refused, nothing loaded", async () => {
    const d = await env('pdu');
    await d.create([
      { slug: 'du-a', model: 'pool', shard: 'us1' },
      { slug: 'du-b', model: 'pool', shard: 'eu1' },
    ]);
    await d.addMigration(
      '0004_ext_ref.sql',
      'alter table projects add column ext_ref bigint; alter table projects add constraint projects_ext_ref_uniq unique (ext_ref) deferrable initially deferred;',
    );
    const up = await d.cli(['migrate', 'up', '--json']);
    expect(up.code, up.stdout + up.stderr).toBe(0);
    for (const slug of ['du-a', 'du-b']) await seedRows(d, slug, 5, slug);
    const ref = async (slug: string, v: number) => {
      const t = (await tenant(d, slug))!;
      await d.q(
        t.shard,
        pool(d),
        'update app.projects set ext_ref = $2 where id = (select id from app.projects where tenant_id = $1 order by id limit 1)',
        [t.key, v],
      );
      return t.key;
    };
    const a = await ref('du-a', 42);
    await ref('du-b', 42);
    const r = await move(d, 'du-a');
    expect(r.code, r.stdout + r.stderr).toBe(1);
    expect(json(r).error.message).toMatch(
      /projects: the tenant's rows conflict with another row of app\.projects on the deferrable constraint projects_ext_ref_uniq \(ext_ref\) = \(42\); nothing was loaded/,
    );
    expect(await d.q('eu1', pool(d), 'select count(*)::int as n from app.projects where ext_ref = 42')).toEqual([{ n: 1 }]);
    expect(await d.q('eu1', pool(d), 'select count(*)::int as n from app.projects where tenant_id = $1', [a])).toEqual([{ n: 0 }]);
    expect((await tenant(d, 'du-a'))!).toMatchObject({ shard: 'us1', status: 'active' });
    await ref('du-a', 43);
    const ok = await moveOk(d, 'du-a');
    expect(ok.tables.every((x: any) => x.foreignKeys === 'once per tenant')).toBe(true);
  });
});

describe('without the grant: row by row', () => {
  it('moves and restores into pools still work, triggers fire per row; doctor says how to speed them up', async () => {
    for (const shard of ['us1', 'eu1']) await su(e, shard, 'revoke set on parameter session_replication_role from tenantctl');
    try {
      const why =
        'role tenantctl may not set session_replication_role; GRANT SET ON PARAMETER session_replication_role TO tenantctl (as a superuser) to check once per tenant';
      expect(await doctorSays(e, 'us1')).toBe(`pool loads check foreign keys row by row: ${why}`);
      const before = await digests(e, 'mv-slow');
      const scans = await scansOf(e, 'task_statuses');
      const m = await e.cli(['move', 'mv-slow', '--to-shard', 'eu1', '--yes']);
      expect(m.code, m.stdout + m.stderr).toBe(0);
      // Each task's status looked up by the status table's index, not by scanning its one page (checksByIndex).
      expect(await seqStatusScansSince(e, scans, 40)).toBeLessThan(5);
      expect(m.stdout).toContain(`foreign keys checked row by row: ${why}`);
      const doc = json(await e.cli(['move', 'status', 'mv-slow', '--json'])).move;
      expect(doc.tables.map((t: any) => t.foreignKeys)).toEqual(Array(5).fill('row by row'));
      const said = await pathReported(e, 'mv-slow', { move: doc.id, foreignKeyCheck: { path: 'row by row', why } });
      expect(said).toMatchObject({ status: { path: 'row by row', why }, event: { path: 'row by row', why } });
      expect(said.human).toContain(`  foreign keys checked row by row: ${why}`);
      expect(await digests(e, 'mv-slow')).toEqual(before);
      const t = (await tenant(e, 'mv-slow'))!;
      expect(await fired(e, 'eu1', t.key)).toBe(40);

      const id = await backupOf(e, 'eu-live');
      const { r, doc: rd } = await restore(e, id, 'eu-slow');
      expect(r.code, r.stdout + r.stderr).toBe(0);
      expect(rd.result.foreignKeys).toBe('row by row');
      expect(rd.result.foreignKeyCheck).toEqual({ path: 'row by row', why });
      expect((await eventsOf(e, 'eu-slow', 'restored')).map((d) => d.foreignKeyCheck)).toEqual([{ path: 'row by row', why }]);
      expect(await fired(e, 'eu1', (await tenant(e, 'eu-slow'))!.key)).toBe(40);
      expect(await digests(e, 'eu-slow')).toEqual(await digests(e, 'eu-live'));
    } finally {
      for (const shard of ['us1', 'eu1']) await su(e, shard, 'grant set on parameter session_replication_role to tenantctl');
    }
    expect(await doctorSays(e, 'us1')).toMatch(/^pool loads check foreign keys once per tenant: role tenantctl may set /);
  });

  it("a trigger of the pool's that changes each copied row: verification refuses the copy and names the trigger and the grant", async () => {
    await e.create([{ slug: 'mv-trg', model: 'pool', shard: 'us1' }]);
    await seed(e, 'mv-trg', 10);
    await e.q(
      'eu1',
      pool(e),
      `create function trig.touch() returns trigger language plpgsql as $$ begin new.body := new.body || ' (touched)'; return new; end $$`,
    );
    await e.q('eu1', pool(e), 'create trigger touch_comments before insert on app.comments for each row execute function trig.touch()');
    for (const shard of ['us1', 'eu1']) await su(e, shard, 'revoke set on parameter session_replication_role from tenantctl');
    try {
      const r = await move(e, 'mv-trg');
      expect(r.code, r.stdout + r.stderr).toBe(1);
      expect(json(r).error.message).toMatch(
        /verification failed: comments: .*the pool's own triggers fired for each copied row \(log_tasks on tasks, touch_comments on comments\).*GRANT SET ON PARAMETER session_replication_role TO tenantctl to load without them/,
      );
      expect((await tenant(e, 'mv-trg'))!).toMatchObject({ shard: 'us1', status: 'active' });
      // A restore into that pool says the same.
      const id = await backupOf(e, 'mv-trg');
      const rr = await e.cli(['restore', id, '--as', 'mv-trg2', '--shard', 'eu1', '--model', 'pool', '--json']);
      expect(rr.code, rr.stdout + rr.stderr).toBe(1);
      expect((json(rr).result?.error ?? json(rr).error).message).toMatch(
        /^after loading, comments: the rows differ from the backup's \(hash\); nothing was switched; the pool's own triggers fired for each copied row \(log_tasks on tasks, touch_comments on comments\).*then run the restore again$/,
      );
      expect(await tenant(e, 'mv-trg2')).toBeUndefined();
    } finally {
      for (const shard of ['us1', 'eu1']) await su(e, shard, 'grant set on parameter session_replication_role to tenantctl');
      await e.q('eu1', pool(e), 'drop trigger touch_comments on app.comments');
    }
  });
});

describe('without the grant: big tables loaded in parts on two connections', () => {
  beforeAll(async () => {
    for (const shard of ['us1', 'eu1']) await su(e, shard, 'revoke set on parameter session_replication_role from tenantctl');
  });
  afterAll(async () => {
    for (const shard of ['us1', 'eu1']) await su(e, shard, 'grant set on parameter session_replication_role to tenantctl');
  });

  it('tasks and comments load in two parts at once (two target backends), triggers fire per row, same hashes; another tenant of the pool reads and writes meanwhile (no table lock)', async () => {
    const before = await digests(e, 'sp-ok');
    const live = (await tenant(e, 'eu-live'))!;
    const app = await appUrl(e, 'eu-live');
    let copiesAtOnce = 0;
    let writes = 0;
    let done = false;
    const scans = await scansOf(e, 'task_statuses');
    const run = move(e, 'sp-ok');
    // Sampled on eu1's pool database of this file's own fleet: only this move loads there now.
    const watch = (async () => {
      await withPg(app.url, async (c) => {
        await c.query('select set_config($1, $2, false)', [e.config.rls.setting, live.key]);
        await c.query(`set lock_timeout = '2s'`);
        while (!done) {
          const [n] = await e.q(
            'eu1',
            pool(e),
            `select count(*)::int as n from pg_stat_activity where datname = $1 and state = 'active' and query ilike 'copy %' and query ilike '% from stdin%'`,
            [pool(e)],
          );
          copiesAtOnce = Math.max(copiesAtOnce, n.n);
          // The other tenant writes to the very tables being loaded: a table lock would time out here.
          await c.query('update app.tasks set title = title where tenant_id = $1', [live.key]);
          await c.query('select count(*) from app.comments where tenant_id = $1', [live.key]);
          writes++;
          await new Promise((r) => setTimeout(r, 10));
        }
      });
    })();
    const r = await run.finally(() => {
      done = true;
    });
    await watch;
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const doc = json(r);
    expect(doc.tables.map((t: any) => [t.table, t.parts, t.foreignKeys])).toEqual([
      ['workspaces', 1, 'row by row'],
      ['users', 1, 'row by row'],
      ['projects', 1, 'row by row'],
      ['tasks', 2, 'row by row'],
      ['comments', 2, 'row by row'],
    ]);
    expect(doc.foreignKeyCheck).toEqual({ path: 'row by row', why: expect.stringMatching(/; the big tables loaded in 2 parts at once, /) });
    expect(copiesAtOnce).toBe(2);
    // The 12,000 tasks' status checks, in both parts: by index, not a scan of the lookup table's one page each.
    expect(await seqStatusScansSince(e, scans, BIG)).toBeLessThan(5);
    expect(writes).toBeGreaterThan(0);
    expect(await digests(e, 'sp-ok')).toEqual(before);
    const t = (await tenant(e, 'sp-ok'))!;
    expect([t.shard, t.status]).toEqual(['eu1', 'active']);
    expect(await fired(e, 'eu1', t.key)).toBe(BIG);
    expect(await appTasks(e, 'sp-ok')).toBe(BIG);
  });

  it('a row one part cannot load, or a verify mismatch after the parts commit: every committed part is deleted, the source keeps serving', async () => {
    const t = (await tenant(e, 'sp-bad'))!;
    const before = await digests(e, 'sp-bad');
    // 'archived' exists on us1 only: one task of the 12,000 fails its part; workspaces, users and projects were committed by then.
    await e.q('us1', pool(e), `update app.tasks set status = 'archived' where tenant_id = $1 and id = md5('tsp-bad7777')::uuid`, [t.key]);
    // Parts commit on their own: the tenant's workspace is seen committed at eu1 mid-move, then removed.
    let seen = 0;
    let done = false;
    const watch = (async () => {
      while (!done) {
        seen = Math.max(seen, (await leftAtEu1(e, t.key)).workspaces);
        await new Promise((r) => setTimeout(r, 10));
      }
    })();
    const bad = await move(e, 'sp-bad').finally(() => {
      done = true;
    });
    await watch;
    expect(seen).toBe(1);
    expect(bad.code, bad.stdout + bad.stderr).toBe(1);
    expect(json(bad).error.message).toMatch(/tasks_status_fkey/);
    expect(await leftAtEu1(e, t.key)).toEqual(none);
    expect((await tenant(e, 'sp-bad'))!).toMatchObject({ shard: 'us1', status: 'active' });
    expect(await appTasks(e, 'sp-bad')).toBe(BIG);

    // Every part committed, then the target's rows differ from the source's.
    await e.q('us1', pool(e), `update app.tasks set status = 'todo' where tenant_id = $1`, [t.key]);
    const tampered = await move(e, 'sp-bad', { TENANTCTL_FAULT: 'move.verify:tamper' });
    expect(tampered.code, tampered.stdout + tampered.stderr).not.toBe(0);
    expect(json(tampered).error.code).toBe('MOVE_VERIFY');
    expect(await leftAtEu1(e, t.key)).toEqual(none);
    expect((await tenant(e, 'sp-bad'))!).toMatchObject({ shard: 'us1', status: 'active' });
    expect(await appTasks(e, 'sp-bad')).toBe(BIG);
    expect((await digests(e, 'sp-bad')).length).toBe(before.length);
  });

  it("SIGKILL once a table's parts have committed: the next command removes every committed row from the pool, the source is whole", async () => {
    const t = (await tenant(e, 'sp-kill'))!;
    const before = await digests(e, 'sp-kill');
    let pid = 0;
    // `sleep`: 1.5 s after each table, the parts of the last one committed.
    const run = move(e, 'sp-kill', { TENANTCTL_FAULT: 'move.copy:sleep' }, (p) => (pid = p));
    await until(async () => (await latestMove(e.db, 'sp-kill'))?.progress.lastTable === 'tasks', 60_000);
    process.kill(pid, 'SIGKILL');
    expect((await run).signal).toBe('SIGKILL');
    // Left behind by the kill: the committed tables, tasks' two parts included.
    expect(await leftAtEu1(e, t.key)).toMatchObject({ workspaces: 1, users: 5, projects: 5, tasks: BIG });
    const r = await e.cli(['move', 'rollback', 'sp-kill', '--yes', '--json']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(await leftAtEu1(e, t.key)).toEqual(none);
    expect((await tenant(e, 'sp-kill'))!).toMatchObject({ shard: 'us1', status: 'active' });
    expect(await digests(e, 'sp-kill')).toEqual(before);
    expect(await appTasks(e, 'sp-kill')).toBe(BIG);
  });
});

describe('COPY BINARY between pools', () => {
  /** A pool table of many kinds of values; `c` typed as given. */
  const kinds = (c: string) =>
    `create table app.kinds (tenant_id uuid not null references app.workspaces (id) on delete cascade, id int not null,
       c ${c}, n numeric(12, 3), a int[], j jsonb, ts timestamptz, b bytea, t text, primary key (tenant_id, id))`;
  /** The tenant's kinds rows at a shard, each value as text (timestamps in UTC). */
  const kindsAt = (shard: string, key: string) =>
    e.q(
      shard,
      pool(e),
      `select id, c::text, n::text, a::text, j::text, (ts at time zone 'UTC')::text as ts, encode(b, 'hex') as b, t
         from app.kinds where tenant_id = $1 order by id`,
      [key],
    );

  it('the same column types at both ends: every table as binary, values exactly as they were (nulls, arrays, jsonb, numerics, timestamps with time zone, bytea); a column typed otherwise at the target: that table as text, converted', async () => {
    try {
      for (const shard of ['us1', 'eu1']) await e.q(shard, pool(e), kinds('int'));
      for (const slug of ['bn-a', 'bn-b']) {
        const t = (await tenant(e, slug))!;
        await e.q('us1', pool(e), 'insert into app.workspaces (id, name) values ($1, $2)', [t.key, slug]);
        await e.q(
          'us1',
          pool(e),
          `insert into app.kinds values
             ($1, 1, 7, 123456789.125, '{1,NULL,3}', '{"k": [1, "two", null, {"x": 1.5}]}', '2026-03-29 01:30:00.123456+01', '\\x00ff0a5c', e'tab\\there\\nnew line \\\\ and ''quote'''),
             ($1, 2, -2147483648, 'NaN', '{}', '"just a string"', 'infinity', '\\x', ''),
             ($1, 3, null, -0.001, null, 'null', '-infinity', null, null),
             ($1, 4, null, null, '{{1,2},{3,4}}', '{}', null, '\\xdeadbeef', 'ünïcødé ✓')`,
          [t.key],
        );
      }
      const a = (await tenant(e, 'bn-a'))!;
      const before = await kindsAt('us1', a.key);
      const moved = await moveOk(e, 'bn-a');
      expect(Object.fromEntries(moved.tables.map((x: any) => [x.table, x.format]))).toEqual(
        Object.fromEntries(['workspaces', 'users', 'projects', 'tasks', 'comments', 'kinds'].map((x) => [x, 'binary'])),
      );
      expect(await kindsAt('eu1', a.key)).toEqual(before);
      expect(before.map((r: any) => r.ts)).toEqual(['2026-03-29 00:30:00.123456', 'infinity', '-infinity', null]);

      // An int at the source, a bigint at the target: binary would be refused; text converts.
      await e.q('eu1', pool(e), 'alter table app.kinds alter column c type bigint');
      const b = (await tenant(e, 'bn-b'))!;
      const was = await kindsAt('us1', b.key);
      const other = await moveOk(e, 'bn-b');
      expect(other.tables.filter((x: any) => x.format !== 'binary').map((x: any) => x.table)).toEqual(['kinds']);
      expect(await kindsAt('eu1', b.key)).toEqual(was);
    } finally {
      for (const shard of ['us1', 'eu1']) await e.q(shard, pool(e), 'drop table if exists app.kinds');
    }
  });
});
