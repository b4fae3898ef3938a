import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { json, ownMigrateFleet, type MigrateEnv, tenantDigests, until, withPg } from '../helpers/migrate-env.js';
import { superuserUrl } from '../helpers/test-fleet.js';
import { databaseUrl } from '../../src/fleet/connection-url.js';
import { latestMove } from '../../src/move/record.js';
import { seed, tenant } from '../helpers/seed.js';
import { ensurePoolFence, FENCE_SCHEMA } from '../../src/placement/pool/fence.js';
import { ensurePoolSwitchFence, SWITCH_EPOCH } from '../../src/placement/pool/switch-fence.js';
import { recordEpoch } from '../../src/placement/pool/snapshot-epoch.js';
import { MIGRATION_LOCK_CLASSID } from '../../src/operations/lock-ids.js';

/**
 * Issue 16, defect 1: after a move switches, the application's old URL (what `resolve` printed
 * before the move) may read at the source but never write there, until `move complete` removes
 * it or `move rollback` points back; `move complete` proves the source unchanged since the switch
 * before it removes anything. Also item 2, the move half: a move that keeps the model keeps the
 * names the application uses. Least-privileged shard role, through the built CLI; the
 * application connects exactly as `resolve` says (tenant roles get a password set by the shard
 * role, as an operator would).
 */
const { env } = ownMigrateFleet();

const PW = 'app-pw';
const apps: pg.Client[] = [];

/** The application's connection, opened with the URL `resolve` prints now (password filled in). */
async function connectApp(e: MigrateEnv, slug: string): Promise<{ c: pg.Client; schema: string; doc: any }> {
  const r = await e.cli(['resolve', slug, '--json']);
  expect(r.code, r.stderr).toBe(0);
  const doc = json(r);
  const url = new URL(doc.url);
  if (doc.setting) {
    url.password = encodeURIComponent(e.config.servingRole.password ?? '');
  } else {
    // Tenant roles have no password: the shard role gives one, on the cluster the tenant is on.
    await e.q(doc.shard, 'postgres', `alter role ${doc.role} password '${PW}'`);
    url.password = PW;
  }
  const c = new pg.Client({ connectionString: url.toString(), application_name: `app-${slug}` });
  c.on('error', () => undefined);
  await c.connect();
  apps.push(c);
  return { c, schema: doc.schema, doc };
}

const moved = /has moved: it lives at shard eu1, database /;
const complete = (e: MigrateEnv, slug: string, extra: string[] = []) => e.cli(['move', 'complete', slug, '--yes', '--json', ...extra]);

async function moveOk(e: MigrateEnv, args: string[]) {
  const r = await e.cli(['move', ...args, '--yes', '--json']);
  expect(r.code, r.stdout + r.stderr).toBe(0);
  expect(json(r).status).toBe('switched');
  return json(r);
}

let e: MigrateEnv;
beforeAll(async () => {
  e = await env('mf');
  await e.create([
    { slug: 'fp', model: 'pool', shard: 'us1' },
    { slug: 'fp-next', model: 'pool', shard: 'us1' },
    { slug: 'fp-rb', model: 'pool', shard: 'us1' },
    { slug: 'fs', model: 'schema', shard: 'us1' },
    { slug: 'fd', model: 'database', shard: 'us1' },
    { slug: 'fk', model: 'schema', shard: 'us1' },
  ]);
  for (const s of ['fp', 'fp-next', 'fp-rb', 'fs', 'fd', 'fk']) await seed(e, s, 40, s);
}, 120_000);

afterAll(async () => {
  await Promise.all(apps.map((c) => c.end().catch(() => undefined)));
});

describe('the source is fenced from the switch until complete or rollback', () => {
  it('pool → pool: the old URL reads but cannot write, also after migrate up; a smuggled write makes complete refuse; a clean complete works', async () => {
    const before = await tenantDigests(e, 'fp');
    const old = await connectApp(e, 'fp');
    const next = await connectApp(e, 'fp-next');
    const doc = await moveOk(e, ['fp', '--to-shard', 'eu1']);
    // Same model: the application's names are the same at the new shard (item 2).
    expect(doc.names).toEqual({
      shard: 'eu1',
      database: `pool_${e.name}`,
      schema: 'app',
      role: e.config.servingRole.name,
      unchanged: true,
    });
    expect(await tenantDigests(e, 'fp')).toEqual(before);
    const now = await connectApp(e, 'fp');
    expect([now.doc.database, now.doc.schema, now.doc.role]).toEqual([old.doc.database, old.doc.schema, old.doc.role]);

    // The old connection (opened before the move) still reads its rows, but every write is refused, naming where it lives now.
    expect((await old.c.query('select count(*)::int as n from app.tasks')).rows[0].n).toBe(40);
    const refused = { code: '25006', message: expect.stringMatching(moved) };
    await expect(
      old.c.query(`update app.tasks set title = 'after the switch' where id = (select id from app.tasks limit 1)`),
    ).rejects.toMatchObject(refused);
    await expect(
      old.c.query(`insert into app.projects (tenant_id, name) values ($1, 'new')`, [now.doc.setting.value]),
    ).rejects.toMatchObject(refused);
    await expect(old.c.query('delete from app.comments')).rejects.toMatchObject(refused);
    // The fence outlives tenantctl (no process holds it) and touches nobody else at the source.
    expect((await next.c.query(`update app.tasks set title = title`)).rowCount).toBe(40);
    // The new URL writes at the target.
    expect((await now.c.query(`update app.tasks set title = title`)).rowCount).toBe(40);

    // A pool migration (new table, new column on a moved table) keeps the fence, on the new table too.
    await e.addMigration(
      '0004_notes.sql',
      `create table notes (tenant_id {{tenant_key_type}} not null, id bigserial, body text, primary key (tenant_id, id));
       alter table tasks add column weight int not null default 1;`,
    );
    const up = await e.cli(['migrate', 'up', '--json']);
    expect(up.code, up.stdout + up.stderr).toBe(0);
    await expect(
      old.c.query(`update app.tasks set title = 'after migrate' where id = (select id from app.tasks limit 1)`),
    ).rejects.toMatchObject(refused);
    await expect(old.c.query(`insert into app.notes (tenant_id, body) values ($1, 'n')`, [now.doc.setting.value])).rejects.toMatchObject(
      refused,
    );
    await next.c.query(`insert into app.notes (tenant_id, body) values ($1, 'neighbour')`, [next.doc.setting.value]);

    // A write smuggled past the fence (tenantctl's own role is not fenced): complete refuses, exit 1, nothing removed.
    const key = now.doc.setting.value;
    await e.q(
      'us1',
      `pool_${e.name}`,
      `insert into app.comments (tenant_id, task_id, author_id, body)
      select tenant_id, task_id, author_id, 'smuggled' from app.comments where tenant_id = $1 limit 1`,
      [key],
    );
    const r = await complete(e, 'fp');
    expect(r.code, r.stdout + r.stderr).toBe(1);
    expect(json(r).error.code).toBe('MOVE_SOURCE_CHANGED');
    expect(json(r).error.message).toMatch(
      /written at the source us1\/pool_mf\/app after the switch: comments \(40 rows at the switch, 41 now\)/,
    );
    const rows = await e.q('us1', `pool_${e.name}`, 'select count(*)::int as n from app.tasks where tenant_id = $1', [key]);
    expect(rows[0].n).toBe(40);
    await expect(old.c.query(`update app.tasks set title = 'still fenced'`)).rejects.toMatchObject(refused);

    // Gone again: the source is as verified (the added column is not part of the proof), and complete removes it.
    await e.q('us1', `pool_${e.name}`, `delete from app.comments where tenant_id = $1 and body = 'smuggled'`, [key]);
    const ok = await complete(e, 'fp');
    expect(ok.code, ok.stdout + ok.stderr).toBe(0);
    expect(json(ok)).toMatchObject({ sourceUnchanged: true, names: { database: `pool_${e.name}`, unchanged: true } });
    expect((await e.q('us1', `pool_${e.name}`, 'select count(*)::int as n from app.tasks where tenant_id = $1', [key]))[0].n).toBe(0);
    // The key stays fenced at the source: an application not yet pointed at the new placement is refused, not writing rows nobody reads.
    expect(await e.q('us1', `pool_${e.name}`, 'select key from tenantctl_fence.switched')).toEqual([{ key }]);
    await expect(old.c.query(`insert into app.notes (tenant_id, body) values ($1, 'after complete')`, [key])).rejects.toMatchObject(
      refused,
    );
    expect((await next.c.query('select count(*)::int as n from app.notes')).rows[0].n).toBe(1);
    // Moved back, the key is at home in us1's pool again: its fence there is lifted and the old URL writes.
    await moveOk(e, ['fp', '--to-shard', 'us1']);
    expect(await e.q('us1', `pool_${e.name}`, 'select key from tenantctl_fence.switched')).toEqual([]);
    await old.c.query(`insert into app.notes (tenant_id, body) values ($1, 'home again')`, [key]);
    expect((await old.c.query('select body from app.notes')).rows).toEqual([{ body: 'home again' }]);
  });

  it('schema → schema: the old URL is refused after the switch; a write past the fence makes complete refuse; rollback lifts the fence and keeps it', async () => {
    const old = await connectApp(e, 'fs');
    const s = old.schema;
    const doc = await moveOk(e, ['fs', '--to-shard', 'eu1']);
    expect(doc.names).toEqual({
      shard: 'eu1',
      database: `schemas_${e.name}`,
      schema: 't_fs',
      role: 'tenant_fs',
      unchanged: true,
      passwordNeeded: true,
    });
    // Once the new role has a password, the move run again (it reports its switch) no longer says it needs one.
    const cred = await e.cli(['tenant', 'credentials', 'fs', '--json']);
    expect(cred.code, cred.stdout + cred.stderr).toBe(0);
    const again = await moveOk(e, ['fs', '--to-shard', 'eu1']);
    expect(again.names).not.toHaveProperty('passwordNeeded');
    // Its times are the switched move's: the write block is part of its duration.
    expect(again.durationMs).toBeGreaterThanOrEqual(again.writeBlockedMs);
    expect(again.writeBlockedMs).toBe(doc.writeBlockedMs);
    const now = await connectApp(e, 'fs');
    expect([now.doc.database, now.doc.schema, now.doc.role]).toEqual([old.doc.database, old.doc.schema, old.doc.role]);
    // Unqualified, as the URL's search_path says.
    expect((await old.c.query('select count(*)::int as n from tasks')).rows[0].n).toBe(40);
    await expect(old.c.query(`update tasks set title = 'after the switch'`)).rejects.toMatchObject({
      code: '25006',
      message: expect.stringMatching(/fs has moved: it lives at shard eu1, database schemas_mf, schema t_fs/),
    });
    await expect(old.c.query(`insert into projects (tenant_id, name) values (gen_random_uuid(), 'x')`)).rejects.toMatchObject({
      code: '25006',
    });
    // The new URL reads the same rows at eu1.
    expect((await now.c.query('select count(*)::int as n from tasks')).rows[0].n).toBe(40);

    // The shard role lifts the fence by hand; the application's write lands at the source.
    await e.q('us1', `schemas_${e.name}`, `alter table "${s}".tasks disable trigger tenantctl_switched`);
    expect(
      (await old.c.query(`update tasks set title = 'written at the old place' where id = (select id from tasks order by id limit 1)`))
        .rowCount,
    ).toBe(1);
    await e.q('us1', `schemas_${e.name}`, `alter table "${s}".tasks enable trigger tenantctl_switched`);
    const r = await complete(e, 'fs');
    expect(r.code, r.stdout + r.stderr).toBe(1);
    expect(json(r).error.message).toMatch(/tasks \(40 rows at the switch, 40 now, contents changed\).*nothing was removed/);
    expect(json(r).error.hint).toMatch(/move rollback fs/);
    expect((await e.q('us1', `schemas_${e.name}`, `select count(*)::int as n from "${s}".tasks`))[0].n).toBe(40);

    // Rollback (nothing was written at the target): the fence is lifted, the old URL writes again, the write is kept.
    const rb = await e.cli(['move', 'rollback', 'fs', '--yes', '--json']);
    expect(rb.code, rb.stdout + rb.stderr).toBe(0);
    expect(json(rb).names).toMatchObject({ shard: 'us1', schema: 't_fs', role: 'tenant_fs' });
    expect((await old.c.query(`update tasks set title = title`)).rowCount).toBe(40);
    expect((await old.c.query(`select count(*)::int as n from tasks where title = 'written at the old place'`)).rows[0].n).toBe(1);
    expect((await complete(e, 'fs')).code).toBe(2);
  });

  it('database → database: refused at the old URL; complete refuses a source written by hand until told to discard it, then drops it and prints the names', async () => {
    const old = await connectApp(e, 'fd');
    await moveOk(e, ['fd', '--to-shard', 'eu1']);
    await expect(old.c.query(`update ${old.schema}.tasks set title = 'x'`)).rejects.toMatchObject({
      code: '25006',
      message: expect.stringMatching(/fd has moved: it lives at shard eu1, database t_fd, schema app/),
    });
    await old.c.end();
    // The kept source (database t_fd and role tenant_fd on us1) is what rollback needs: audit names no orphan of it.
    const audit = json(await e.cli(['audit', '--json']));
    expect(
      audit.findings.filter(
        (f: { check: string; object: string }) => f.check.startsWith('catalog.orphan') && /t_fd|tenant_fd/.test(f.object),
      ),
    ).toEqual([]);
    // The fence does not stop the shard role dropping it: a delete by hand is a change too.
    await e.q('us1', 't_fd', `alter table app.comments disable trigger tenantctl_switched`);
    await e.q('us1', 't_fd', `delete from app.comments where ctid = (select ctid from app.comments limit 1)`);
    const refused = await complete(e, 'fd');
    expect(refused.code).toBe(1);
    expect(json(refused).error.message).toMatch(/comments \(40 rows at the switch, 39 now\)/);
    expect(await e.q('us1', 'postgres', `select 1 from pg_database where datname = 't_fd'`)).toHaveLength(1);
    const r = await e.cli(['move', 'complete', 'fd', '--yes', '--discard-source-writes']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/writes made at the source after the switch were discarded/);
    expect(r.stdout).toMatch(/keeps its names: database t_fd, schema app, role tenant_fd on shard eu1/);
    expect(r.stdout).toMatch(
      /role tenant_fd on shard eu1 was made by the move and has no password .*tenantctl tenant credentials fd gives it one/,
    );
    expect(await e.q('us1', 'postgres', `select 1 from pg_database where datname = 't_fd'`)).toEqual([]);
  });

  it('pool → schema: names change and the report says so; rollback lifts the pool fence and the old URL writes again', async () => {
    const old = await connectApp(e, 'fp-rb');
    const doc = await moveOk(e, ['fp-rb', '--to-shard', 'eu1', '--to-model', 'schema']);
    expect(doc.names).toEqual({
      shard: 'eu1',
      database: `schemas_${e.name}`,
      schema: 't_fp_rb',
      role: 'tenant_fp_rb',
      unchanged: false,
      passwordNeeded: true,
    });
    await expect(old.c.query(`update app.tasks set title = 'x'`)).rejects.toMatchObject({
      code: '25006',
      message: expect.stringMatching(moved),
    });
    const rb = await e.cli(['move', 'rollback', 'fp-rb', '--yes', '--json']);
    expect(rb.code, rb.stdout + rb.stderr).toBe(0);
    expect((await old.c.query(`update app.tasks set title = title`)).rowCount).toBe(40);
    expect((await tenant(e, 'fp-rb'))!.model).toBe('pool');
    expect(await e.q('us1', `pool_${e.name}`, 'select key from tenantctl_fence.switched')).toEqual([]);
  });

  it('pool → pool rolled back: the abandoned target pool refuses the key (an application that resolved meanwhile), and a later move there lifts it', async () => {
    await e.create([{ slug: 'frb', model: 'pool', shard: 'us1' }]);
    await seed(e, 'frb', 10, 'frb');
    await moveOk(e, ['frb', '--to-shard', 'eu1']);
    const there = await connectApp(e, 'frb');
    expect(there.doc.shard).toBe('eu1');
    const rb = await e.cli(['move', 'rollback', 'frb', '--yes', '--json']);
    expect(rb.code, rb.stdout + rb.stderr).toBe(0);
    const key = (await tenant(e, 'frb'))!.key;
    await expect(
      there.c.query(`insert into app.workspaces (id, name) values ($1, 'stray') on conflict do nothing`, [key]),
    ).rejects.toMatchObject({
      code: '25006',
      message: expect.stringMatching(/frb has moved: it lives at shard us1/),
    });
    // Moved there again: the pool's prepare lifts the fence, and the tenant writes there.
    await moveOk(e, ['frb', '--to-shard', 'eu1']);
    expect((await there.c.query(`update app.tasks set title = title`)).rowCount).toBe(10);
  });

  it('killed with the switch fence up but the catalog not switched: the next move command lifts it, the old URL writes again', async () => {
    const app = await connectApp(e, 'fk');
    let pid = 0;
    const run = e.cli(['move', 'fk', '--to-shard', 'eu1', '--yes', '--json'], {
      env: { TENANTCTL_FAULT: 'move.switch-fence' },
      onSpawn: (p) => (pid = p),
    });
    await until(async () => (await latestMove(e.db, 'fk'))?.progress.switchFence?.at, 60_000);
    process.kill(pid, 'SIGKILL');
    expect((await run).signal).toBe('SIGKILL');
    expect((await tenant(e, 'fk'))!.shard).toBe('us1');
    await expect(app.c.query('update tasks set title = title')).rejects.toMatchObject({ code: '25006' });
    // What the operator is told: the application is refused and told a place the catalog does not name.
    const show = json(await e.cli(['tenant', 'show', 'fk', '--json']));
    expect(show.killedOperations).toMatchObject([
      {
        kind: 'move',
        writesRefused: true,
        what: expect.stringMatching(/its switch fence stays up .*it has moved to shard eu1, .*which the catalog does not say yet/),
      },
    ]);
    const st = await e.cli(['move', 'status', 'fk']);
    expect(st.stdout).toMatch(
      /refuses writes since .*telling the application it has moved to eu1\/\S+, which the catalog does not say yet/,
    );
    expect(st.stdout).not.toMatch(/writes blocked not yet/);
    const rb = await e.cli(['move', 'rollback', 'fk', '--yes', '--json']);
    expect(rb.code, rb.stdout + rb.stderr).toBe(0);
    expect(json(rb).cleaned.join('; ')).toMatch(/lifted the switch fence at us1\/schemas_mf\/t_fk/);
    expect((await app.c.query('update tasks set title = title')).rowCount).toBe(40);
  });

  it('killed after the switch with the write fence still up: the old URL is told where the tenant lives now, not "paused"', async () => {
    await e.create([{ slug: 'fk2', model: 'schema', shard: 'us1' }]);
    await seed(e, 'fk2', 10, 'fk2');
    const app = await connectApp(e, 'fk2');
    const marker = join(mkdtempSync(join(tmpdir(), 'tenantctl-fk2-')), 'paused');
    let pid = 0;
    const run = e.cli(['move', 'fk2', '--to-shard', 'eu1', '--yes', '--json'], {
      env: { TENANTCTL_FAULT: 'move.after-switch', TENANTCTL_FAULT_PAUSED_FILE: marker },
      onSpawn: (p) => (pid = p),
    });
    await until(async () => existsSync(marker), 60_000);
    process.kill(pid, 'SIGKILL');
    expect((await run).signal).toBe('SIGKILL');
    expect((await tenant(e, 'fk2'))!.shard).toBe('eu1');
    await expect(app.c.query('update tasks set title = title')).rejects.toMatchObject({
      code: '25006',
      message: expect.stringMatching(/fk2 has moved: it lives at shard eu1/),
    });
    // tenant show names the kept source and what ends it; move status says how long writes were
    // blocked (fence to switch), not "not yet".
    const show = json(await e.cli(['tenant', 'show', 'fk2', '--json']));
    expect(show.switchedMove).toMatchObject({
      from: expect.stringMatching(/^schema us1\//),
      what: expect.stringMatching(
        /switched from schema us1\/.*until tenantctl move complete fk2 drops it \(or tenantctl move rollback fk2/,
      ),
    });
    const st = json(await e.cli(['move', 'status', 'fk2', '--json']));
    expect(st.move.writeBlockedMs).toBeGreaterThanOrEqual(0);
    const done = await complete(e, 'fk2');
    expect(done.code, done.stdout + done.stderr).toBe(0);
    expect(json(await e.cli(['tenant', 'show', 'fk2', '--json'])).switchedMove).toBeNull();
  });

  it('a tenant whose role owns large objects is refused before anything changes (a move copies tables only)', async () => {
    await e.create([{ slug: 'flo', model: 'database', shard: 'us1' }]);
    const t = (await tenant(e, 'flo'))!;
    const su = superuserUrl(databaseUrl(e.config.shards.find((x) => x.name === 'us1')!.url, t.database_name));
    await withPg(su, async (c) => {
      const { rows } = await c.query<{ oid: number }>(`select lo_from_bytea(0, 'a file') as oid`);
      await c.query(`alter large object ${rows[0].oid} owner to tenant_flo`);
    });
    const r = await e.cli(['move', 'flo', '--to-shard', 'eu1', '--yes', '--json']);
    expect(r.code, r.stdout + r.stderr).toBe(2);
    expect(json(r).error).toMatchObject({
      code: 'MOVE_FAILED',
      message: expect.stringMatching(
        new RegExp(`role tenant_flo owns 1 large object in us1/${t.database_name}; a move copies tables only`),
      ),
    });
    expect((await tenant(e, 'flo'))!).toMatchObject({ shard: 'us1', status: 'active' });

    // A backup would leave them out (exit 2, no archive), and so would a delete's final backup:
    // the delete stops there and gives the tenant back, its large object kept.
    const b = await e.cli(['backup', 'create', 'flo', '--json']);
    expect(b.code, b.stdout + b.stderr).toBe(2);
    expect(json(b).results[0]).toMatchObject({
      status: 'failed',
      error: { code: 'LARGE_OBJECTS', message: expect.stringMatching(/owns 1 large object .*a backup holds tables only/) },
    });
    expect(json(await e.cli(['backup', 'list', 'flo', '--json'])).backups).toEqual([]);
    const d = await e.cli(['tenant', 'delete', 'flo', '--yes', '--json']);
    expect(d.code, d.stdout + d.stderr).not.toBe(0);
    expect(d.stdout + d.stderr).toMatch(/large object/);
    expect((await tenant(e, 'flo'))!).toMatchObject({ status: 'active' });
    expect(await e.q('us1', t.database_name, `select 1 from pg_largeobject_metadata`)).toHaveLength(1);
  });
});

/** The us1 pool's fence policies made beforehand (the first move of a pool makes them, and waits for open transactions on its tables). */
async function poolFencesMade(e: MigrateEnv): Promise<string> {
  const pool = databaseUrl(e.config.shards[0].url, `pool_${e.name}`);
  await withPg(pool, async (c) => {
    await c.query('begin');
    await ensurePoolFence(c, 'app', e.config);
    await ensurePoolSwitchFence(c, 'app', e.config);
    await c.query('commit');
  });
  return pool;
}

describe('the write fence and the application', () => {
  it('an insert whose statement began before the switch and is checked after the write fence lifted is refused (the switch fence reads with a snapshot of its own)', async () => {
    // fresh90: with check_not_switched STABLE, such an insert read the switched table with its
    // statement's snapshot (from before the switch) and landed at the source after the switch.
    // Held here deterministically: a restrictive policy of the test's own, named to be checked
    // before tenantctl's two (restrictive policies are checked in name order), waits on an
    // advisory lock the test holds until the move has switched and released its write fence.
    await e.create([{ slug: 'frc', model: 'pool', shard: 'us1' }]);
    await seed(e, 'frc', 5, 'frc');
    const pool = await poolFencesMade(e);
    await withPg(pool, async (c) => {
      await c.query('begin');
      // SECURITY DEFINER: the serving role may not take advisory locks itself (closed-functions.ts).
      await c.query(`create function app.test_hold() returns boolean language plpgsql volatile security definer
        set search_path = pg_catalog as $fn$ begin perform pg_advisory_xact_lock_shared(4242, 4242); return true; end $fn$`);
      await c.query('grant execute on function app.test_hold() to public');
      await c.query('create policy a_test_hold on app.projects as restrictive for insert to public with check (app.test_hold())');
      await c.query('commit');
    });
    const holder = new pg.Client({ connectionString: pool });
    await holder.connect();
    try {
      await holder.query('select pg_advisory_lock(4242, 4242)');
      const app = await connectApp(e, 'frc');
      // The statement's snapshot is taken now; its check waits at the test's policy.
      const insert = app.c.query(`insert into app.projects (tenant_id, name) values ($1, 'raced')`, [app.doc.setting.value]).then(
        () => 'landed',
        (err) => err,
      );
      const waiting = `select 1 from pg_locks where locktype = 'advisory' and classid = 4242 and objid = 4242 and not granted`;
      await until(async () => (await holder.query(waiting)).rowCount! > 0, 60_000, 10);
      await moveOk(e, ['frc', '--to-shard', 'eu1']);
      await holder.query('select pg_advisory_unlock(4242, 4242)');
      expect(await insert).toMatchObject({ code: '25006', message: expect.stringMatching(moved) });
    } finally {
      await holder
        .query('drop policy if exists a_test_hold on app.projects; drop function if exists app.test_hold()')
        .catch(() => undefined);
      await holder.end();
    }
    // Nothing landed at the source after the switch: complete finds it unchanged.
    const done = await complete(e, 'frc');
    expect(done.code, done.stdout + done.stderr).toBe(0);
  });

  it('a REPEATABLE READ transaction that read before the switch and writes after it is told to retry (40001), not let in at the source; its retry is refused as moved; a neighbour retries and writes', async () => {
    // Its snapshot predates the switch, so the switched row is invisible to it however the check is
    // written; the move's write fence did not wait for it (it had only read).
    await e.create([
      { slug: 'frr', model: 'pool', shard: 'us1' },
      { slug: 'frr-n', model: 'pool', shard: 'us1' },
    ]);
    for (const s of ['frr', 'frr-n']) await seed(e, s, 5, s);
    await poolFencesMade(e);
    const mover = await connectApp(e, 'frr');
    const neighbour = await connectApp(e, 'frr-n');
    const insert = (a: typeof mover) =>
      a.c.query(`insert into app.projects (tenant_id, name) values ($1, 'rr')`, [a.doc.setting.value]).then(
        () => 'landed',
        (err) => err,
      );
    for (const a of [mover, neighbour]) {
      await a.c.query('begin isolation level repeatable read');
      await a.c.query('select count(*) from app.projects');
    }
    await moveOk(e, ['frr', '--to-shard', 'eu1']);
    const retry = { code: '40001', message: expect.stringMatching(/moved or was deleted after this transaction took its snapshot: retry/) };
    // Another change of the pool's fences after the switch that never committed (a tenantctl
    // killed in it): the switch is still known to have happened. The old code kept one id, which
    // that change overwrote, and let the stale write in.
    await withPg(await poolFencesMade(e), async (c) => {
      await c.query('begin');
      await recordEpoch(c, FENCE_SCHEMA, SWITCH_EPOCH, `${FENCE_SCHEMA}.switched`);
      await c.query('rollback');
    });
    for (const a of [mover, neighbour]) {
      expect(await insert(a)).toMatchObject(retry);
      await a.c.query('rollback');
      await a.c.query('begin isolation level repeatable read');
    }
    expect(await insert(mover)).toMatchObject({ code: '25006', message: expect.stringMatching(moved) });
    expect(await insert(neighbour)).toBe('landed');
    for (const a of [mover, neighbour]) await a.c.query('rollback');
    // A transaction begun after the switch is not asked to retry (the neighbour writes at once).
    await neighbour.c.query('begin isolation level serializable');
    expect(await insert(neighbour)).toBe('landed');
    await neighbour.c.query('commit');
    const done = await complete(e, 'frr');
    expect(done.code, done.stdout + done.stderr).toBe(0);
  });

  it('a reader at the source holding its tables past the switch: the move succeeds, warns that the source keeps its write fence, and move complete removes it', async () => {
    // DROP TRIGGER waits for readers too: the lift after the switch used to wait the connection's
    // lock_timeout and fail the switched move (exit 1, the catalog already at the target).
    await e.create([{ slug: 'frd', model: 'schema', shard: 'us1' }]);
    await seed(e, 'frd', 5, 'frd');
    const { c, schema } = await connectApp(e, 'frd');
    await c.query('begin isolation level repeatable read');
    expect((await c.query(`select count(*)::int as n from "${schema}".tasks`)).rows[0].n).toBe(5);
    const r = await e.cli(['move', 'frd', '--to-shard', 'eu1', '--yes', '--json']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const doc = json(r);
    expect(doc.status).toBe('switched');
    expect(doc.warning).toMatch(/the write fence at the old placement us1\/.+ stays: a transaction there holds its tables .*pid \d+/);
    // The reader still reads; its writes are refused at the old placement.
    expect((await c.query(`select count(*)::int as n from "${schema}".tasks`)).rows[0].n).toBe(5);
    await expect(c.query(`update "${schema}".tasks set title = title`)).rejects.toMatchObject({ code: '25006' });
    await c.query('rollback').catch(() => undefined);
    const done = await complete(e, 'frd');
    expect(done.code, done.stdout + done.stderr).toBe(0);
    expect((await tenant(e, 'frd'))!.shard).toBe('eu1');
  });

  it('a reader at the target holding its tables: move rollback ends its session there and finishes', async () => {
    // The tenant's own role's sessions in the abandoned target: their open read held the target's
    // tables against the fence's lift and the removal, and the rollback failed (exit 1) after the
    // catalog had switched back.
    await e.create([{ slug: 'frt', model: 'schema', shard: 'us1' }]);
    await seed(e, 'frt', 5, 'frt');
    await moveOk(e, ['frt', '--to-shard', 'eu1']);
    const { c, schema } = await connectApp(e, 'frt');
    await c.query('begin isolation level repeatable read');
    expect((await c.query(`select count(*)::int as n from "${schema}".tasks`)).rows[0].n).toBe(5);
    const r = await e.cli(['move', 'rollback', 'frt', '--yes', '--json']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    await expect(c.query('select 1')).rejects.toThrow();
    const t = (await tenant(e, 'frt'))!;
    expect(t.shard).toBe('us1');
    expect(await e.q('eu1', t.database_name, 'select 1 from pg_namespace where nspname = $1', [schema])).toEqual([]);
  });

  it('a move back into a pool keeps the key refused there until it switches: an application on the stale URL cannot write while it runs (or after it fails)', async () => {
    // The pool driver's prepare lifted the fence at the move's preflight: a move that then failed
    // left the pool taking the key's writes from an application that never re-resolved.
    await e.create([{ slug: 'fback', model: 'pool', shard: 'us1' }]);
    await seed(e, 'fback', 5, 'fback');
    const stale = await connectApp(e, 'fback');
    await moveOk(e, ['fback', '--to-shard', 'eu1']);
    expect((await complete(e, 'fback')).code).toBe(0);
    const write = () =>
      stale.c.query(`insert into app.projects (tenant_id, name) values ($1, 'stale')`, [stale.doc.setting.value]).then(
        () => 'landed',
        (err) => err,
      );
    expect(await write()).toMatchObject({ code: '25006', message: expect.stringMatching(moved) });
    // Back to us1, paused past its preflight (the target pool prepared), then killed.
    const paused = join(mkdtempSync(join(tmpdir(), 'tenantctl-mf-')), 'paused');
    let pid = 0;
    const run = e.cli(['move', 'fback', '--to-shard', 'us1', '--yes', '--json'], {
      env: { TENANTCTL_FAULT: 'move.after-preflight', TENANTCTL_FAULT_PAUSED_FILE: paused },
      onSpawn: (p) => (pid = p),
    });
    await until(async () => existsSync(paused) && readFileSync(paused, 'utf8').trim() === 'move.after-preflight', 60_000);
    expect(await write()).toMatchObject({ code: '25006', message: expect.stringMatching(moved) });
    process.kill(pid, 'SIGKILL');
    await run;
    expect(await write()).toMatchObject({ code: '25006', message: expect.stringMatching(moved) });
    // Run again, it switches: the key writes at us1 again, where it lives.
    await moveOk(e, ['fback', '--to-shard', 'us1']);
    expect(await write()).toBe('landed');
  });

  it('an application transaction that wrote one table and goes on to another while the fence is taken is not killed (no deadlock), and the move goes on', async () => {
    await e.create([{ slug: 'fdl', model: 'schema', shard: 'us1' }]);
    await seed(e, 'fdl', 5, 'fdl');
    const { c, schema } = await connectApp(e, 'fdl');
    const t = (await tenant(e, 'fdl'))!;
    // users first: the fence takes the tables in name order (comments, projects, …, users), so
    // it would hold projects while it waits for users, and the application then waits for projects.
    await c.query('begin');
    await c.query(`update "${schema}".users set email = email where false`);
    const move = e.cli(['move', 'fdl', '--to-shard', 'eu1', '--yes', '--json']);
    const waiting = `select 1 from pg_locks l where not l.granted and l.relation = '"${schema}".users'::regclass`;
    await until(async () => (await e.q('us1', t.database_name, waiting)).length > 0, 60_000, 10);
    await c.query(`update "${schema}".projects set name = name where false`);
    await c.query('commit');
    const r = await move;
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(json(r).status).toBe('switched');
    // Switched, not completed: its old placement still holds its data, so a delete is refused
    // (it would leave that behind) until the move is settled.
    const refused = await e.cli(['tenant', 'delete', 'fdl', '--yes', '--skip-backup', '--json']);
    expect(refused.code, refused.stdout + refused.stderr).toBe(2);
    expect(json(refused).error).toMatchObject({ code: 'TENANT_STATE', hint: expect.stringContaining('tenantctl move complete fdl --yes') });
    expect((await tenant(e, 'fdl'))!.status).toBe('active');
    expect(json(await e.cli(['move', 'complete', 'fdl', '--yes', '--json'])).ok).toBe(true);
    const deleted = await e.cli(['tenant', 'delete', 'fdl', '--yes', '--skip-backup']);
    expect(deleted.code, deleted.stdout + deleted.stderr).toBe(0);
    expect(await e.q('us1', t.database_name, 'select nspname from pg_namespace where nspname = $1', [t.schema_name])).toEqual([]);
  });
});

describe('a pool migrated while one of its tenants moves (migrate up skips only the moving tenant)', () => {
  let v: MigrateEnv;
  it('the move fails at the switch and leaves the tenant at the source, at the pool version; run again, it carries the new column and its values', async () => {
    v = await env('mvv');
    await v.create([
      { slug: 'vv', model: 'pool', shard: 'us1' },
      { slug: 'vv-nb', model: 'pool', shard: 'us1' },
    ]);
    for (const s of ['vv', 'vv-nb']) await seed(v, s, 20, s);
    const dir = mkdtempSync(join(tmpdir(), 'tenantctl-mvv-'));
    const resume = join(dir, 'resume');
    const run = v.cli(['move', 'vv', '--to-shard', 'eu1', '--yes', '--json'], {
      env: { TENANTCTL_FAULT: 'move.after-verify:resume', TENANTCTL_FAULT_RESUME_FILE: resume },
    });
    await until(async () => {
      const op = await latestMove(v.db, 'vv');
      return op?.status === 'running' && (op.progress as { phases?: Record<string, number> }).phases?.verify !== undefined;
    }, 60_000);
    // A column and a data migration, applied to the source pool for its other tenant, rows of the moving one included.
    await v.addMigration('0004_tag.sql', `alter table tasks add column tag text; update tasks set tag = 'migrated';`);
    const up = await v.cli(['migrate', 'up', '--json']);
    expect(up.code, up.stdout + up.stderr).toBe(0);
    expect(json(up).results.filter((x: { status: string }) => x.status === 'skipped')).toMatchObject([{ tenant: 'vv', reason: 'moving' }]);
    writeFileSync(resume, '');
    const r = await run;
    expect(r.code, r.stdout + r.stderr).toBe(1);
    expect(json(r).error).toMatchObject({
      code: 'MOVE_FAILED',
      message: expect.stringMatching(
        /the source pool us1\/pool_mvv\/app was migrated while vv moved \(now at 0004_tag; the copy was made at 0003_comments\): nothing was switched/,
      ),
    });
    // At the source, at the version its rows are at; nothing of it left at eu1.
    expect((await tenant(v, 'vv'))!).toMatchObject({ shard: 'us1', status: 'active', schema_version: '0004_tag' });
    const key = (await tenant(v, 'vv'))!.key;
    const left = await v.q('eu1', 'postgres', `select count(*)::int as n from pg_database where datname = 'pool_mvv'`);
    if (left[0].n)
      expect((await v.q('eu1', 'pool_mvv', 'select count(*)::int as n from app.tasks where tenant_id = $1', [key]))[0].n).toBe(0);

    // While another tenantctl session holds the source pool's migration lock (a migrate up there),
    // the switch waits 5 s for it, then the move stops (exit 3), nothing switched.
    const holder = new pg.Client({ connectionString: databaseUrl(v.config.shards.find((x) => x.name === 'us1')!.url, 'pool_mvv') });
    await holder.connect();
    try {
      await holder.query(`select pg_advisory_lock(${MIGRATION_LOCK_CLASSID}, hashtext('app'))`);
      const locked = await v.cli(['move', 'vv', '--to-shard', 'eu1', '--yes', '--json']);
      expect(locked.code, locked.stdout + locked.stderr).toBe(3);
      expect(json(locked).error.message).toMatch(
        /^pool us1\/pool_mvv\/app, which migrate up is migrating \(the move did not switch: run it again once that is done\), is locked by another tenantctl session/,
      );
      expect((await tenant(v, 'vv'))!).toMatchObject({ shard: 'us1', status: 'active' });
    } finally {
      await holder.end();
    }

    // Again: the target pool is brought to 0004 first, and the column comes with its values.
    const again = await v.cli(['move', 'vv', '--to-shard', 'eu1', '--yes', '--json']);
    expect(again.code, again.stdout + again.stderr).toBe(0);
    const tags = await v.q('eu1', 'pool_mvv', 'select tag, count(*)::int as n from app.tasks where tenant_id = $1 group by tag', [key]);
    expect(tags).toEqual([{ tag: 'migrated', n: 20 }]);
  });

  it('a switched move whose target was migrated is rolled back to a source at the older version: the catalog names the source version, and migrate up brings it forward', async () => {
    await v.create([{ slug: 'vr', model: 'schema', shard: 'us1' }]);
    await seed(v, 'vr', 5, 'vr');
    const moved = await v.cli(['move', 'vr', '--to-shard', 'eu1', '--yes', '--json']);
    expect(moved.code, moved.stdout + moved.stderr).toBe(0);
    await v.addMigration('0005_tag2.sql', 'alter table tasks add column tag2 text;');
    expect((await v.cli(['migrate', 'up', '--tenant', 'vr'])).code).toBe(0);
    expect((await tenant(v, 'vr'))!.schema_version).toBe('0005_tag2');
    const rb = await v.cli(['move', 'rollback', 'vr', '--yes']);
    expect(rb.code, rb.stdout + rb.stderr).toBe(0);
    expect(rb.stdout).toMatch(
      /the source is at 0004_tag, not 0005_tag2 \(the copy was migrated after the switch\): tenantctl migrate up --tenant vr brings it forward/,
    );
    expect((await tenant(v, 'vr'))!).toMatchObject({ shard: 'us1', schema_version: '0004_tag' });
    const up = await v.cli(['migrate', 'up', '--tenant', 'vr', '--json']);
    expect(json(up).results).toMatchObject([{ tenant: 'vr', status: 'succeeded' }]);
    const cols = await v.q(
      'us1',
      `schemas_mvv`,
      `select 1 from information_schema.columns where table_schema = 't_vr' and column_name = 'tag2'`,
    );
    expect(cols).toHaveLength(1);
    expect((await tenant(v, 'vr'))!.schema_version).toBe('0005_tag2');
  });
});
