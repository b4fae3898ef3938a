import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { databaseUrl } from '../../src/fleet/connection-url.js';
import { json, ownMigrateFleet, sleep, until, withPg, type MigrateEnv } from '../helpers/migrate-env.js';
import { untilRestorePhase } from '../helpers/restore-ops.js';
import { seed, tenant } from '../helpers/seed.js';
import { superuserUrl } from '../helpers/test-fleet.js';
import { appUrl } from '../helpers/app-url.js';

/**
 * `restore --replace` keeps the tenant's names and fences it from its first step (issue 16,
 * defect 2 and the restore part of 9; items 2 and 8). The application is a client connected
 * exactly as `resolve` says (plus a password the test sets through the shard role), writing the
 * whole time. Private fleet, least-privileged shard role, built CLI, real PostgreSQL 15.
 */
const { env } = ownMigrateFleet();

const RESTORE_MESSAGE = /tenantctl is restoring a backup over it/;

async function backupOf(e: MigrateEnv, slug: string): Promise<string> {
  const r = await e.cli(['backup', 'create', slug, '--json']);
  expect(r.code, r.stderr + r.stdout).toBe(0);
  return json(r).results[0].backup;
}

/** A task the application inserts: its title marks it. */
const insertTask = (schema: string) =>
  `insert into "${schema}".tasks (tenant_id, project_id, title) select tenant_id, id, $1 from "${schema}".projects order by id limit 1`;

/** Titles of the application's marked tasks in the tenant's placement, read as the application. */
async function marked(url: string, schema: string, prefix: string): Promise<string[]> {
  return withPg(url, async (c) => {
    const r = await c.query<{ title: string }>(`select title from "${schema}".tasks where title like $1 order by title`, [`${prefix}%`]);
    return r.rows.map((x) => x.title);
  });
}

/**
 * The application writing through its URL until stopped: one insert every few ms, reconnecting
 * when its session is ended or a connection is refused. Every accepted and refused write is kept.
 */
function writer(url: string, schema: string, prefix: string) {
  const accepted: string[] = [];
  const refused: string[] = [];
  const lost: string[] = [];
  let stop = false;
  let n = 0;
  const done = (async () => {
    let c: pg.Client | null = null;
    while (!stop) {
      try {
        if (!c) {
          c = new pg.Client({ connectionString: url });
          c.on('error', () => undefined);
          await c.connect();
        }
        const title = `${prefix}${String(++n).padStart(6, '0')}`;
        try {
          await c.query(insertTask(schema), [title]);
          accepted.push(title);
        } catch (err) {
          if ((err as { code?: string }).code === '25006') refused.push((err as Error).message);
          else throw err;
        }
      } catch (err) {
        lost.push((err as Error).message);
        await c?.end().catch(() => undefined);
        c = null;
        await sleep(20);
      }
      await sleep(5);
    }
    await c?.end().catch(() => undefined);
  })();
  return {
    accepted,
    refused,
    lost,
    async stop() {
      stop = true;
      await done;
    },
  };
}

const schemaCount = (e: MigrateEnv, db: string, like: string) =>
  e.q('us1', db, 'select nspname from pg_namespace where nspname like $1', [like]).then((r) => r.map((x) => x.nspname));
const databasesLike = (e: MigrateEnv, like: string) =>
  e.q('us1', 'postgres', 'select datname from pg_database where datname like $1', [like]).then((r) => r.map((x) => x.datname));
const fenceTriggers = (e: MigrateEnv, db: string) =>
  e.q('us1', db, `select count(*)::int as n from pg_trigger where tgname = 'tenantctl_fence'`).then((r) => r[0].n as number);

describe('restore --replace keeps the names the application uses', () => {
  for (const model of ['schema', 'database', 'pool'] as const) {
    it(`${model}: the unchanged URL works afterwards; writes during it are refused with the restore's message and none is lost where nobody reads`, async () => {
      const e = await env(`rr${model[0]}`);
      const slug = `rr-${model}`;
      await e.create([{ slug, model, shard: 'us1' }]);
      await seed(e, slug, 200, 'r');
      const id = await backupOf(e, slug);
      const before = (await tenant(e, slug))!;
      const app = await appUrl(e, slug);
      // The application changes its data, and keeps a session open at the placement.
      await withPg(app.url, (c) => c.query(`update "${app.schema}".tasks set title = 'changed'`));
      const open = new pg.Client({ connectionString: app.url });
      open.on('error', () => undefined);
      await open.connect();
      await open.query(`select count(*) from "${app.schema}".tasks`);

      const w = writer(app.url, app.schema, 'w');
      await until(async () => w.accepted.length >= 5, 20_000);
      const r = await e.cli(['restore', id, '--replace', '--yes', '--json']);
      const afterSwitch = w.accepted.length;
      await until(async () => w.accepted.length >= afterSwitch + 5, 20_000);
      await w.stop();
      expect(r.code, r.stderr + r.stdout).toBe(0);
      const doc = json(r).result;
      expect(doc).toMatchObject({ status: 'succeeded', replaced: true, target: `us1/${before.database_name}/${before.schema_name}` });
      expect(doc.writesRefusedMs).toBeGreaterThan(0);

      // The catalog, resolve and the application's URL are what they were.
      const now = (await tenant(e, slug))!;
      expect([now.database_name, now.schema_name]).toEqual([before.database_name, before.schema_name]);
      const again = await appUrl(e, slug);
      expect(again.resolved.url).toBe(app.resolved.url);
      const rows = await withPg(app.url, (c) => c.query(`select count(*)::int as n from "${app.schema}".tasks where title = 'changed'`));
      expect(rows.rows[0].n, "the backup's data, not the changed one").toBe(0);
      await withPg(app.url, (c) => c.query(insertTask(app.schema), ['after-restore']));

      // Writes during the restore were refused with its message, and every accepted write is
      // either in the safety backup (before the fence) or in the restored placement (after the
      // switch): nothing was accepted where nobody will read it.
      expect(w.refused.length).toBeGreaterThan(0);
      for (const m of w.refused) expect(m).toMatch(RESTORE_MESSAGE);
      const kept = await marked(app.url, app.schema, 'w');
      const check = await e.cli(['restore', doc.safetyBackup, '--as', `${slug}-chk`, '--json']);
      expect(check.code, check.stderr + check.stdout).toBe(0);
      const chk = (await tenant(e, `${slug}-chk`))!;
      const inSafety = (
        await e.q(
          'us1',
          chk.database_name,
          `select title from "${chk.schema_name}".tasks where tenant_id = $1 and title like 'w%' order by title`,
          [chk.key],
        )
      ).map((x) => x.title);
      expect([...inSafety, ...kept].sort()).toEqual([...w.accepted].sort());
      expect(kept.length).toBeGreaterThan(0);

      if (model !== 'pool') {
        expect(doc.role).toBe(app.role);
        // The open session at the replaced placement was ended.
        expect(doc.endedSessions).toBeGreaterThanOrEqual(1);
        await expect(open.query('select 1')).rejects.toThrow();
        // Nothing left beside it: no fresh or replaced placement, no fence on the restored one.
        const db = before.database_name;
        if (model === 'schema') expect(await schemaCount(e, db, `${before.schema_name}\\_\\_%`)).toEqual([]);
        else {
          expect(await databasesLike(e, `${before.database_name}\\_\\_%`)).toEqual([]);
          expect(doc.unreachableMs).toBeGreaterThan(0);
        }
        expect(await fenceTriggers(e, db)).toBe(0);
      }
      await open.end().catch(() => undefined);
    }, 120_000);
  }
});

describe('a session that will not end', () => {
  it("database tenant: a superuser's session on its database fails the replace clearly (exit 1), nothing switched, the tenant reachable and writable; after it ends, the replace succeeds", async () => {
    const e = await env('rrstuck');
    const slug = 'rr-stuck';
    await e.create([{ slug, model: 'database', shard: 'us1' }]);
    await seed(e, slug, 50, 's');
    const id = await backupOf(e, slug);
    const t = (await tenant(e, slug))!;
    const app = await appUrl(e, slug);
    await withPg(app.url, (c) => c.query(`update "${app.schema}".tasks set title = 'live'`));
    const su = new pg.Client({ connectionString: databaseUrl(superuserUrl(e.config.shards[0].url), t.database_name) });
    su.on('error', () => undefined);
    await su.connect();
    const suPid = (await su.query('select pg_backend_pid() as p')).rows[0].p;

    const r = await e.cli(['restore', id, '--replace', '--yes', '--json']);
    expect(r.code, r.stderr + r.stdout).toBe(1);
    const doc = json(r).result;
    expect(doc.status).toBe('failed');
    expect(doc.error.code).toBe('RESTORE_FAILED');
    expect(doc.error.message).toMatch(new RegExp(`pid ${suPid} \\(role postgres.*nothing was switched`));
    // Nothing half-done: the catalog and the data as before, no fresh database, no fence, the
    // application connects and writes; the record closed.
    expect((await tenant(e, slug))!).toMatchObject({ database_name: t.database_name, schema_name: t.schema_name });
    expect(await databasesLike(e, `${t.database_name}\\_\\_%`)).toEqual([]);
    expect(await fenceTriggers(e, t.database_name)).toBe(0);
    await withPg(app.url, async (c) => {
      expect((await c.query(`select count(*)::int as n from "${app.schema}".tasks where title = 'live'`)).rows[0].n).toBe(50);
      await c.query(insertTask(app.schema), ['still-writable']);
    });
    const running = await e.db
      .selectFrom('operations')
      .select('id')
      .where('kind', '=', 'restore')
      .where('status', '=', 'running')
      .execute();
    expect(running).toEqual([]);

    await su.end();
    const ok = await e.cli(['restore', id, '--replace', '--yes', '--json']);
    expect(ok.code, ok.stderr + ok.stdout).toBe(0);
    expect(await marked(app.url, app.schema, 'live')).toEqual([]);
  }, 120_000);
});

describe('killed mid-replace', () => {
  it('SIGKILL with the fresh placement built: writes stay refused until the next restore, which lifts the fence and converges', async () => {
    const e = await env('rrkill');
    await e.create([
      { slug: 'rk-s', model: 'schema', shard: 'us1' },
      { slug: 'rk-d', model: 'database', shard: 'us1' },
    ]);
    for (const [slug, fault] of [
      ['rk-s', 'restore.committed'],
      ['rk-d', 'restore.committed'],
      ['rk-d', 'restore.switched'],
    ] as const) {
      await seed(e, slug, 40, fault.slice(-6));
      const id = await backupOf(e, slug);
      const t = (await tenant(e, slug))!;
      const app = await appUrl(e, slug);
      let child = 0;
      const run = e.cli(['restore', id, '--replace', '--yes'], { env: { TENANTCTL_FAULT: fault }, onSpawn: (p) => (child = p) });
      // A failed spawn rejects it: handled now, thrown at `await run` below (not unhandled meanwhile).
      run.catch(() => undefined);
      const op: any = await untilRestorePhase(e.db, slug, ['committed', 'switched']);
      if (fault === 'restore.committed') {
        // The fence is up while it runs, and stays after the kill (a restore that did not finish).
        await expect(withPg(app.url, (c) => c.query(insertTask(app.schema), ['during']))).rejects.toThrow(RESTORE_MESSAGE);
      }
      process.kill(child, 'SIGKILL');
      expect((await run).signal).toBe('SIGKILL');
      if (fault === 'restore.committed') {
        await expect(withPg(app.url, (c) => c.query(insertTask(app.schema), ['after-kill']))).rejects.toThrow(RESTORE_MESSAGE);
        // A resume lets nobody write past that fence, and says so rather than "access again".
        const resumed = await e.cli(['tenant', 'resume', slug, '--json']);
        expect(resumed.code, resumed.stdout + resumed.stderr).toBe(0);
        expect(json(resumed).writesRefusedBy).toEqual([expect.stringContaining('its write fence stays up')]);
      }
      // The next restore sweeps it: the fence lifted, the leftover removed, and it converges.
      const again = await e.cli(['restore', id, '--replace', '--yes', '--json']);
      expect(again.code, again.stderr + again.stdout).toBe(0);
      const swept = JSON.stringify(json(again).result.warnings);
      expect(swept).toContain(`restore ${op.id} of ${slug} was killed`);
      expect(swept).toContain(fault === 'restore.switched' ? 'it had switched' : 'it had not switched');
      expect((await tenant(e, slug))!).toMatchObject({ database_name: t.database_name, schema_name: t.schema_name });
      expect(await fenceTriggers(e, t.database_name)).toBe(0);
      if (t.model === 'schema') expect(await schemaCount(e, t.database_name, `${t.schema_name}\\_\\_%`)).toEqual([]);
      else expect(await databasesLike(e, `${t.database_name}\\_\\_%`)).toEqual([]);
      await withPg(app.url, (c) => c.query(insertTask(app.schema), ['converged']));
      const closed = await e.db.selectFrom('operations').selectAll().where('id', '=', op.id).executeTakeFirstOrThrow();
      expect(closed.status).toBe('failed');
      await e.q('us1', t.database_name, `truncate "${t.schema_name}".workspaces cascade`);
    }
  }, 300_000);
});
