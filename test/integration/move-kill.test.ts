import { existsSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { json, ownMigrateFleet, until, withPg, type MigrateEnv, tenantDigests } from '../helpers/migrate-env.js';
import { superuserUrl } from '../helpers/test-fleet.js';
import { databaseUrl } from '../../src/fleet/connection-url.js';
import { tenantRoleName } from '../../src/placement/naming.js';
import { untilCopying } from '../helpers/move-ops.js';
import { latestMove } from '../../src/move/record.js';
import { sweepFleet } from '../../src/operations/sweep.js';
import { endLockSession } from '../helpers/lock-session.js';

/**
 * Crash safety of a move (issue 10): SIGKILL once each phase is recorded done, then the move is
 * resumed (run again) or rolled back. Before the switch the catalog must point at the whole
 * source; after it, at the whole target; either way the per-table hashes equal the ones before,
 * the write fence is gone after the next command, and nothing is left at the other end after a
 * rollback. Own fleet, least-privileged shard role, the built CLI.
 */
const { env } = ownMigrateFleet();

type Tenant = { slug: string; key: string; model: string; shard: string; database_name: string; schema_name: string; status: string };
const tenant = async (e: MigrateEnv, slug: string) =>
  (await e.db.selectFrom('tenants').selectAll().where('slug', '=', slug).executeTakeFirst()) as Tenant | undefined;
const url = (e: MigrateEnv, shard: string, db: string) => databaseUrl(e.config.shards.find((s) => s.name === shard)!.url, db);

async function seed(e: MigrateEnv, slug: string, n: number): Promise<void> {
  const t = (await tenant(e, slug))!;
  const s = `"${t.schema_name}"`;
  await e.q(t.shard, t.database_name, `insert into ${s}.workspaces (id, name) values ($1, $2)`, [t.key, `ws ${slug}`]);
  await e.q(
    t.shard,
    t.database_name,
    `insert into ${s}.users (tenant_id, id, email, display_name) select $1, md5($2 || i)::uuid, 'u' || i || '@ex.com', 'U ' || i from generate_series(1, 3) i`,
    [t.key, slug],
  );
  await e.q(
    t.shard,
    t.database_name,
    `insert into ${s}.projects (tenant_id, id, name, owner_id) select $1, md5('p' || $2 || i)::uuid, 'P ' || i, md5($2 || 1)::uuid from generate_series(1, 3) i`,
    [t.key, slug],
  );
  await e.q(
    t.shard,
    t.database_name,
    `insert into ${s}.tasks (tenant_id, id, project_id, title, status) select $1, md5('t' || $2 || i)::uuid, md5('p' || $2 || (1 + i % 3))::uuid, 'T ' || i, 'todo' from generate_series(1, $3) i`,
    [t.key, slug, n],
  );
}

const digests = tenantDigests;

/** A write by the application, where the catalog says the tenant lives: the fence must be gone. */
async function appWrites(e: MigrateEnv, slug: string): Promise<void> {
  const t = (await tenant(e, slug))!;
  if (t.model === 'pool') {
    const serving = url(e, t.shard, t.database_name).replace(
      /\/\/[^@]*@/,
      `//${e.config.servingRole.name}:${encodeURIComponent(e.config.servingRole.password ?? '')}@`,
    );
    await withPg(serving, async (c) => {
      await c.query('select set_config($1, $2, false)', [e.config.rls.setting, t.key]);
      await c.query('update app.tasks set title = title');
    });
  } else {
    await withPg(superuserUrl(url(e, t.shard, t.database_name)), async (c) => {
      await c.query(`set role "${tenantRoleName(t.slug)}"`);
      await c.query(`update "${t.schema_name}".tasks set title = title`);
    });
  }
}

/** Run the move with a hang after `phase`, wait until the phase is recorded, SIGKILL it. */
async function killedAfter(e: MigrateEnv, slug: string, args: string[], phase: string): Promise<number> {
  let pid = 0;
  const run = e.cli(['move', slug, ...args, '--yes', '--json'], {
    env: { TENANTCTL_FAULT: `move.after-${phase}` },
    onSpawn: (p) => (pid = p),
  });
  let id = 0;
  await until(async () => {
    const op = await latestMove(e.db, slug);
    id = Number(op?.id ?? 0);
    return op && ['running', 'switched'].includes(op.status) && (op.progress as any)?.phases?.[phase] !== undefined;
  }, 60_000);
  process.kill(pid, 'SIGKILL');
  expect((await run).signal).toBe('SIGKILL');
  return id;
}

const cases = [
  { phase: 'preflight', from: 'pool', to: ['--to-shard', 'eu1'], toModel: 'pool' },
  { phase: 'fence', from: 'schema', to: ['--to-shard', 'eu1', '--to-model', 'database'], toModel: 'database' },
  { phase: 'copy', from: 'database', to: ['--to-shard', 'eu1', '--to-model', 'pool'], toModel: 'pool' },
  { phase: 'verify', from: 'pool', to: ['--to-shard', 'eu1', '--to-model', 'schema'], toModel: 'schema' },
  { phase: 'switch', from: 'schema', to: ['--to-shard', 'eu1'], toModel: 'schema' },
] as const;

let e: MigrateEnv;
beforeAll(async () => {
  e = await env('mk');
  const rows = cases.flatMap((c) => [
    { slug: `r-${c.phase}`, model: c.from, shard: 'us1' },
    { slug: `b-${c.phase}`, model: c.from, shard: 'us1' },
  ]);
  await e.create(rows);
  for (const r of rows) await seed(e, r.slug, 20);
}, 180_000);

describe('SIGKILL in each phase of a move', () => {
  for (const c of cases) {
    it(`after ${c.phase} (${c.from} → ${c.toModel}): the catalog points where the data is whole; resume finishes, rollback undoes`, async () => {
      for (const how of ['resume', 'rollback'] as const) {
        const slug = `${how === 'resume' ? 'r' : 'b'}-${c.phase}`;
        const before = await digests(e, slug);
        const id = await killedAfter(e, slug, [...c.to], c.phase);
        const now = (await tenant(e, slug))!;
        const switched = c.phase === 'switch';
        expect([now.shard, now.model], `${slug} after the kill`).toEqual(switched ? ['eu1', c.toModel] : ['us1', c.from]);
        expect(await digests(e, slug)).toEqual(before);
        if (how === 'resume') {
          const r = await e.cli(['move', slug, ...c.to, '--yes', '--json']);
          expect(r.code, r.stdout + r.stderr).toBe(0);
          const doc = json(r);
          expect(doc.status).toBe('switched');
          expect(doc.move === id || doc.resumed?.move === id, JSON.stringify(doc.resumed)).toBe(true);
          const t = (await tenant(e, slug))!;
          expect([t.shard, t.model, t.status]).toEqual(['eu1', c.toModel, 'active']);
        } else {
          if (now.status === 'moving') {
            // Not suspendable half-way: the refusal says how to settle it first.
            const s = await e.cli(['tenant', 'suspend', slug, '--json']);
            expect(s.code, s.stdout + s.stderr).toBe(2);
            expect(json(s).error.hint).toContain(`tenantctl move rollback ${slug} --yes`);
            // Measured where the catalog says it lives, never left out of usage.
            const u = await e.cli(['usage', '--tenant', slug, '--json']);
            expect(
              json(u).tenants.map((x: { tenant: string }) => x.tenant),
              u.stdout + u.stderr,
            ).toEqual([slug]);
          }
          const r = await e.cli(['move', 'rollback', slug, '--yes', '--json']);
          expect(r.code, r.stdout + r.stderr).toBe(0);
          const t = (await tenant(e, slug))!;
          expect([t.shard, t.model, t.status]).toEqual(['us1', c.from, 'active']);
          // Nothing of the tenant is left at the other end.
          const pool = await e
            .q('eu1', `pool_${e.name}`, 'select count(*)::int as n from app.tasks where tenant_id = $1', [t.key])
            .catch(() => [{ n: 0 }]);
          expect(pool[0].n).toBe(0);
          const dbs = await e.q('eu1', 'postgres', 'select datname from pg_database where datname like $1', [
            `t_${slug.replace(/-/g, '_')}%`,
          ]);
          expect(dbs).toEqual([]);
          // The record says what is true: no copy left, so the sweep (doctor's check) finds nothing.
          // (It used to be written back from the row read before the cleanup: "copy still there".)
          const rec = await latestMove(e.db, slug);
          expect(rec?.status).toBe('rolled back');
          expect(rec?.progress.targetCreated ?? false).toBe(false);
          const { found } = await sweepFleet({ config: e.config, db: e.db, fleet: e.fleet, command: 'test' }, { dryRun: true });
          expect(found.filter((f) => f.tenant === slug).map((f) => f.what)).toEqual([]);
        }
        expect(await digests(e, slug)).toEqual(before);
        await appWrites(e, slug);
      }
    });
  }
});

describe('Ctrl-C during a move', () => {
  it('SIGINT in the copy: exit 130, fence lifted, copy removed, tenant where it was, recorded as interrupted', async () => {
    const slug = 'int-copy';
    await e.create([{ slug, model: 'schema', shard: 'us1' }]);
    await seed(e, slug, 20);
    const before = await digests(e, slug);
    let pid = 0;
    const run = e.cli(['move', slug, '--to-shard', 'eu1', '--to-model', 'database', '--yes', '--json'], {
      env: { TENANTCTL_FAULT: 'move.copy' },
      onSpawn: (p) => (pid = p),
    });
    await untilCopying(e.db, slug, 60_000);
    expect(json(await e.cli(['move', 'status', slug, '--json'])).move).toMatchObject({ status: 'running', phase: 'copy', live: true });
    process.kill(pid, 'SIGINT');
    const r = await run;
    expect(r.code, r.stdout + r.stderr).toBe(130);
    expect(json(r).error.code).toBe('INTERRUPTED');
    const t = (await tenant(e, slug))!;
    expect([t.shard, t.model, t.status]).toEqual(['us1', 'schema', 'active']);
    expect(await digests(e, slug)).toEqual(before);
    await appWrites(e, slug);
    expect(await e.q('eu1', 'postgres', 'select 1 from pg_database where datname = $1', ['t_int_copy'])).toEqual([]);
    const st = json(await e.cli(['move', 'status', slug, '--json']));
    expect(st.move.status).toBe('interrupted');
  });
});

describe('Ctrl-C before a move built anything', () => {
  it('SIGINT after preflight: exit 130, and it says nothing was fenced (not "the write fence was lifted")', async () => {
    const slug = 'int-pre';
    await e.create([{ slug, model: 'schema', shard: 'us1' }]);
    const marker = join(await mkdtemp(join(tmpdir(), 'int-pre-')), 'paused');
    let pid = 0;
    const run = e.cli(['move', slug, '--to-shard', 'eu1', '--to-model', 'database', '--yes', '--json'], {
      env: { TENANTCTL_FAULT: 'move.after-preflight:pause', TENANTCTL_FAULT_PAUSED_FILE: marker },
      onSpawn: (p) => (pid = p),
    });
    await until(async () => existsSync(marker) || null, 60_000);
    process.kill(pid, 'SIGINT');
    const r = await run;
    expect(r.code, r.stdout + r.stderr).toBe(130);
    const message = json(r).error.message as string;
    expect(message).toMatch(
      /stopped before the target was built: what was made at the target was removed; the tenant stays where it was and its writes never stopped/,
    );
    expect(message).not.toMatch(/fence was lifted/);
    expect((await tenant(e, slug))!.status).toBe('active');
    await appWrites(e, slug);
  });
});

describe("the catalog session holding a move's lock is lost", () => {
  it('the move stops before its next phase (SHARD_LOST, exit 1): fence lifted, copy removed, tenant where it was', async () => {
    const slug = 'lost-mv';
    await e.create([{ slug, model: 'schema', shard: 'us1' }]);
    await seed(e, slug, 20);
    const before = await digests(e, slug);
    const resume = join(await mkdtemp(join(tmpdir(), 'lost-mv-')), 'go');
    const run = e.cli(['move', slug, '--to-shard', 'eu1', '--to-model', 'database', '--yes', '--json'], {
      env: { TENANTCTL_FAULT: 'move.after-copy:resume', TENANTCTL_FAULT_RESUME_FILE: resume },
    });
    run.catch(() => undefined);
    await until(async () => (await latestMove(e.db, slug))?.progress.phases?.copy !== undefined || null, 60_000);
    expect(await endLockSession(e)).toEqual([{ ok: true }]);
    await writeFile(resume, 'go');
    const r = await run;
    expect(r.code, r.stdout + r.stderr).toBe(1);
    expect(json(r).error).toMatchObject({
      code: 'SHARD_LOST',
      message: expect.stringMatching(/lost the catalog connection that held this command's tenant locks/),
    });
    const t = (await tenant(e, slug))!;
    expect([t.shard, t.model, t.status]).toEqual(['us1', 'schema', 'active']);
    expect(await digests(e, slug)).toEqual(before);
    await appWrites(e, slug);
    expect(await e.q('eu1', 'postgres', 'select 1 from pg_database where datname = $1', ['t_lost_mv'])).toEqual([]);
  });
});

describe('a move rollback killed after switching back', () => {
  it('leaves the catalog at the source; the next move rollback removes the copy it had not removed yet', async () => {
    const slug = 'rb-kill';
    await e.create([{ slug, model: 'schema', shard: 'us1' }]);
    await seed(e, slug, 20);
    const before = await digests(e, slug);
    const moved = await e.cli(['move', slug, '--to-shard', 'eu1', '--to-model', 'database', '--yes', '--json']);
    expect(moved.code, moved.stderr).toBe(0);
    let pid = 0;
    const run = e.cli(['move', 'rollback', slug, '--yes', '--json'], {
      env: { TENANTCTL_FAULT: 'move-rollback.before-remove' },
      onSpawn: (p) => (pid = p),
    });
    await until(async () => (await latestMove(e.db, slug))?.status === 'rolled back', 60_000);
    await new Promise((r) => setTimeout(r, 300));
    process.kill(pid, 'SIGKILL');
    expect((await run).signal).toBe('SIGKILL');
    const t = (await tenant(e, slug))!;
    expect([t.shard, t.model]).toEqual(['us1', 'schema']);
    const copy = () => e.q('eu1', 'postgres', 'select 1 from pg_database where datname = $1', ['t_rb_kill']);
    expect(await copy()).toHaveLength(1);
    // move status says the copy is there and what removes it (it said "copied …, next: nothing").
    const st = json(await e.cli(['move', 'status', slug, '--json']));
    expect(st.move).toMatchObject({
      status: 'rolled back',
      copy: 'left',
      next: expect.stringMatching(/its copy at eu1\/t_rb_kill\/app is left .*the tenant's next backup, restore or move removes it/),
    });
    const again = await e.cli(['move', 'rollback', slug, '--yes', '--json']);
    expect(again.code, again.stdout + again.stderr).toBe(0);
    expect(json(again).cleaned.join(' ')).toContain('that a killed move rollback left');
    expect(await copy()).toHaveLength(0);
    expect(await digests(e, slug)).toEqual(before);
    await appWrites(e, slug);
  });
});
