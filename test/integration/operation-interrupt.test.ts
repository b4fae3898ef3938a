import { readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { storageFor } from '../../src/backup/regions.js';
import { json, migrateEnv, until, withPg, type MigrateEnv } from '../helpers/migrate-env.js';
import { superuserUrl } from '../helpers/test-fleet.js';
import { databaseUrl } from '../../src/fleet/connection-url.js';
import { sharedFleet } from '../helpers/shared-fleet.js';
import { seed, tenant } from '../helpers/seed.js';

/**
 * Ctrl-C (a real SIGINT to bin/tenantctl) in each phase of backup, restore --replace and bulk
 * create (issue 18, item 1 and its Bad-input list): the one engine (src/operations/) stops at the
 * next clean point, undoes or finishes the step it was in, prints what was done and the exact
 * command that finishes it, exits 130; nothing is lost and re-running that command finishes.
 * A test pauses the command at a named fault point (TENANTCTL_FAULT, src/operations/fault-points.ts).
 */
// The shared fleet (nothing here stops a server or counts fleet-wide): an environment per test, prefixed.
const envs: MigrateEnv[] = [];
const env = async (name: string) => {
  const e = await migrateEnv(sharedFleet(), `oint_${name}`);
  envs.push(e);
  return e;
};
afterAll(async () => {
  await Promise.all(envs.map((e) => e.close().catch(() => undefined)));
});

type Op = { id: string; status: string; progress: { phase?: string } };

const latestOp = (e: MigrateEnv, kind: string, slug: string) =>
  e.db
    .selectFrom('operations')
    .selectAll()
    .where('kind', '=', kind)
    .where('tenant_slug', '=', slug)
    .orderBy('id', 'desc')
    .executeTakeFirst() as Promise<Op | undefined>;

/** Run the CLI paused at `fault`, wait until its operation shows `phase`, send SIGINT; the finished run. */
async function interruptAt(e: MigrateEnv, args: string[], fault: string, until_: () => Promise<boolean>) {
  let pid = 0;
  const run = e.cli(args, { env: { TENANTCTL_FAULT: fault }, onSpawn: (p) => (pid = p) });
  await until(until_, 120_000);
  // Never 0: that would signal this whole process group.
  expect(pid).toBeGreaterThan(0);
  process.kill(pid, 'SIGINT');
  return run;
}

const atPhase = (e: MigrateEnv, kind: string, slug: string, phase: string) => async () => {
  const op = await latestOp(e, kind, slug);
  return op?.status === 'running' && op.progress.phase === phase;
};

/** The application's view of the tenant's tasks: how many carry `title`. */
async function titled(e: MigrateEnv, slug: string, title: string): Promise<number> {
  const r = await e.cli(['resolve', slug, '--json']);
  const doc = json(r);
  const t = (await tenant(e, slug))!;
  // As the shard's role (the application's password is the operator's to set); the placement `resolve` names.
  const rows = await e.q(t.shard, doc.database, `select count(*)::int as n from "${doc.schema}".tasks where title = $1`, [title]);
  return rows[0].n;
}

describe('Ctrl-C in a backup', () => {
  it('while copying: exit 130, says what was done and the command that finishes it; no partial archive, record interrupted; re-running finishes', async () => {
    const e = await env('ib');
    const slug = 'ib-s';
    await e.create([{ slug, model: 'schema', shard: 'us1' }]);
    await seed(e, slug, 30, 'b');
    const r = await interruptAt(e, ['backup', 'create', slug], 'backup.copy', atPhase(e, 'backup', slug, 'copy'));
    expect(r.code, r.stdout + r.stderr).toBe(130);
    expect(r.stderr).toMatch(/interrupted: the backup of ib-s stops at its next clean point/);
    expect(r.stderr).toContain(`the backup of ${slug} was interrupted in copy`);
    expect(r.stderr).toMatch(/the partial archive ib-s\.\S+ was removed/);
    expect(r.stderr).toMatch(new RegExp(`to finish it, run: tenantctl .*backup create ${slug}`));
    const dir = join(storageFor(e.config, 'us-east').location, slug);
    expect((await readdir(dir).catch(() => [])).filter((n) => n.startsWith('.'))).toEqual([]);
    expect((await latestOp(e, 'backup', slug))?.status).toBe('interrupted');

    const again = await e.cli(['backup', 'create', slug, '--json']);
    expect(again.code, again.stderr).toBe(0);
    expect(json(again).results[0]).toMatchObject({ status: 'succeeded', rows: expect.any(Number) });
    expect(json(again).results[0].warnings).toBeUndefined();
  }, 300_000);
});

describe('Ctrl-C while pg_dump reads a schema tenant', () => {
  it('ends pg_dump at once (it does not wait for its tables): exit 130, no partial archive, nothing left reading', async () => {
    const e = await env('ibd');
    const slug = 'ibd-s';
    await e.create([{ slug, model: 'schema', shard: 'us1' }]);
    await seed(e, slug, 10, 'b');
    const t = (await tenant(e, slug))!;
    const url = databaseUrl(superuserUrl(e.config.shards.find((s) => s.name === t.shard)!.url), t.database_name);
    // A session holding the tenant's table: pg_dump's LOCK TABLE waits for it (up to a minute).
    await withPg(url, async (holder) => {
      await holder.query('begin');
      await holder.query(`lock table "${t.schema_name}".users in access exclusive mode`);
      // Asked on another session: in the holder's transaction pg_stat_activity is read once.
      const dumping = async () =>
        (
          await e.q(
            t.shard,
            t.database_name,
            "select count(*)::int as n from pg_stat_activity where application_name = 'tenantctl backup' and wait_event_type = 'Lock'",
          )
        )[0].n > 0;
      let pid = 0;
      const run = e.cli(['backup', 'create', slug], { onSpawn: (p) => (pid = p) });
      await until(dumping, 120_000);
      expect(pid).toBeGreaterThan(0);
      process.kill(pid, 'SIGINT');
      // pg_dump is ended while the lock is still held, not left waiting for it (its lock wait is a
      // minute: the old code's pg_dump stayed until then, and the backup with it).
      await until(async () => !(await dumping()), 30_000);
      const r = await run;
      expect(r.code, r.stdout + r.stderr).toBe(130);
      expect(r.stderr).toContain(`the backup of ${slug} was interrupted`);
      expect(r.stderr).toMatch(/the partial archive ibd-s\.\S+ was removed/);
      await holder.query('rollback');
    });
    const dir = join(storageFor(e.config, 'us-east').location, slug);
    expect((await readdir(dir).catch(() => [])).filter((n) => n.startsWith('.'))).toEqual([]);
    expect((await latestOp(e, 'backup', slug))?.status).toBe('interrupted');
  }, 300_000);
});

describe('Ctrl-C in restore --replace', () => {
  for (const [fault, phase] of [
    ['restore.fenced', 'fenced'],
    ['restore.safety-backup', 'safety-backup'],
    ['restore.loaded', 'loaded'],
  ] as const) {
    it(`at ${fault}: exit 130, the tenant keeps its data and takes writes, nothing left; re-running the printed command replaces it`, async () => {
      const e = await env(`ir${phase[0]}`);
      const slug = `ir-${phase.slice(0, 4)}`;
      await e.create([{ slug, model: 'schema', shard: 'us1' }]);
      await seed(e, slug, 40, 'r');
      const b = await e.cli(['backup', 'create', slug, '--json']);
      const id = json(b).results[0].backup;
      const t = (await tenant(e, slug))!;
      await e.q('us1', t.database_name, `update "${t.schema_name}".tasks set title = 'changed'`);
      const changed = await titled(e, slug, 'changed');
      expect(changed).toBeGreaterThan(0);

      const args = ['restore', id, '--replace', '--yes'];
      const r = await interruptAt(e, args, fault, atPhase(e, 'restore', slug, phase));
      expect(r.code, r.stdout + r.stderr).toBe(130);
      expect(r.stderr).toContain(`the restore of ${slug} was interrupted`);
      expect(r.stderr).toContain(`the fence was lifted: ${slug} keeps its data as it was`);
      expect(r.stderr).toContain(`to finish it, run: tenantctl`);
      expect(r.stderr).toContain(`restore ${id} --replace --yes`);
      if (phase !== 'fenced') expect(r.stderr).toMatch(/done: safety backup ir-\S+ written \(kept\)/);
      // Nothing lost: the live data is as it was, and the application writes (the fence is gone).
      expect(await titled(e, slug, 'changed')).toBe(changed);
      await e.q(
        'us1',
        t.database_name,
        `update "${t.schema_name}".tasks set title = 'written after' where ctid = (select ctid from "${t.schema_name}".tasks limit 1)`,
      );
      expect((await latestOp(e, 'restore', slug))?.status).toBe('interrupted');
      const left = await e.q('us1', t.database_name, `select nspname from pg_namespace where nspname like $1 and nspname <> $2`, [
        `${t.schema_name}%`,
        t.schema_name,
      ]);
      expect(left).toEqual([]);

      const again = await e.cli(args.concat('--json'));
      expect(again.code, again.stderr + again.stdout).toBe(0);
      expect(json(again).result).toMatchObject({ status: 'succeeded', replaced: true });
      expect(await titled(e, slug, 'changed')).toBe(0);
    }, 300_000);
  }
});

describe('Ctrl-C in a pool restore --replace, before its load commits', () => {
  it('at restore.loaded (rows in, not committed): the load is rolled back, exit 130, the tenant keeps its data and takes writes', async () => {
    const e = await env('irpl');
    const slug = 'irpl-p';
    await e.create([{ slug, model: 'pool', shard: 'us1' }]);
    await seed(e, slug, 40, 'r');
    const id = json(await e.cli(['backup', 'create', slug, '--json'])).results[0].backup;
    const t = (await tenant(e, slug))!;
    await e.q('us1', t.database_name, `update "${t.schema_name}".tasks set title = 'changed' where tenant_id = $1`, [t.key]);
    const changed = await titled(e, slug, 'changed');
    expect(changed).toBeGreaterThan(0);
    const r = await interruptAt(e, ['restore', id, '--replace', '--yes'], 'restore.loaded', atPhase(e, 'restore', slug, 'loaded'));
    expect(r.code, r.stdout + r.stderr).toBe(130);
    expect(r.stderr).toContain(`the fence was lifted: ${slug} keeps its data as it was`);
    expect(await titled(e, slug, 'changed')).toBe(changed);
    expect((await latestOp(e, 'restore', slug))?.status).toBe('interrupted');
    // Its application writes again.
    const app = json(await e.cli(['resolve', slug, '--json']));
    await e.q('us1', app.database, `update "${app.schema}".tasks set title = 'after' where tenant_id = $1 and title = 'changed'`, [t.key]);
  }, 300_000);
});

describe('Ctrl-C in a pool restore --replace, once its load has committed', () => {
  it("the commit swapped the pool tenant's rows: the restore finishes (the data is the backup's, as it says), never 'keeps its data'", async () => {
    const e = await env('irp');
    const slug = 'irp-a';
    await e.create([{ slug, model: 'pool', shard: 'us1' }]);
    await seed(e, slug, 40, 'r');
    const id = json(await e.cli(['backup', 'create', slug, '--json'])).results[0].backup;
    const t = (await tenant(e, slug))!;
    await e.q('us1', t.database_name, `update "${t.schema_name}".tasks set title = 'changed' where tenant_id = $1`, [t.key]);
    expect(await titled(e, slug, 'changed')).toBeGreaterThan(0);
    const r = await interruptAt(e, ['restore', id, '--replace', '--yes'], 'restore.committed', atPhase(e, 'restore', slug, 'committed'));
    expect(r.stdout + r.stderr).not.toContain('keeps its data as it was');
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`restored ${id.replace(/\./g, '\\.')} in place of ${slug}`));
    expect(await titled(e, slug, 'changed')).toBe(0);
    expect((await latestOp(e, 'restore', slug))?.status).toBe('succeeded');
  }, 300_000);
});

describe('Ctrl-C in restore --as, once the load has committed', () => {
  for (const model of ['schema', 'pool'] as const) {
    it(`${model}: exit 130, what was loaded is removed as the message says (a pool: the new key's rows); the printed command restores it`, async () => {
      const e = await env(`ia${model[0]}`);
      const slug = `ia-${model[0]}`;
      const as = `${slug}-copy`;
      await e.create([{ slug, model, shard: 'us1' }]);
      await seed(e, slug, 40, 'a');
      const id = json(await e.cli(['backup', 'create', slug, '--json'])).results[0].backup;
      const t = (await tenant(e, slug))!;
      const keysAtPool = async () =>
        (await e.q('us1', t.database_name, `select distinct tenant_id::text as k from "${t.schema_name}".tasks`)).map((r) => r.k).sort();
      const before = model === 'pool' ? await keysAtPool() : [];

      const args = ['restore', id, '--as', as];
      const r = await interruptAt(e, args, 'restore.committed', atPhase(e, 'restore', as, 'committed'));
      expect(r.code, r.stdout + r.stderr).toBe(130);
      expect(r.stderr).toContain(`nothing was registered and what was loaded was removed; ${as} does not exist`);
      expect(await tenant(e, as)).toBeUndefined();
      if (model === 'schema') {
        const left = await e.q('us1', t.database_name, `select nspname from pg_namespace where nspname like 't_ia_s_copy%'`);
        expect(left).toEqual([]);
        expect(await e.q('us1', 'postgres', `select rolname from pg_roles where rolname like 'tenant_ia_s_copy%'`)).toEqual([]);
      } else expect(await keysAtPool()).toEqual(before);

      const again = await e.cli(args.concat('--json'));
      expect(again.code, again.stderr + again.stdout).toBe(0);
      expect((await tenant(e, as))?.status).toBe('active');
      if (model === 'pool') expect((await keysAtPool()).length).toBe(before.length + 1);
    }, 300_000);
  }
});

describe('Ctrl-C in a bulk create', () => {
  it('the tenant being created finishes, no new one starts, exit 130 with the command that finishes; re-running creates the rest', async () => {
    const e = await env('ic');
    const file = join(e.migrationsDir, '..', 'ic.csv');
    await writeFile(file, 'slug,model,shard\nic-a,schema,us1\nic-b,schema,us1\nic-c,pool,us1\n');
    let pid = 0;
    const run = e.cli(['tenant', 'create', '--from-file', file, '--concurrency', '1', '--json'], {
      env: { TENANTCTL_FAULT: 'create.prepared' },
      onSpawn: (p) => (pid = p),
    });
    await until(async () => (await tenant(e, 'ic-a'))?.status === 'provisioning', 120_000);
    expect(pid).toBeGreaterThan(0);
    process.kill(pid, 'SIGINT');
    const r = await run;
    expect(r.code, r.stdout + r.stderr).toBe(130);
    expect(r.stderr).toMatch(/interrupted: no new tenants start/);
    expect((await tenant(e, 'ic-a'))?.status).toBe('active');
    expect(await tenant(e, 'ic-c')).toBeUndefined();
    expect(json(r)).toMatchObject({ interrupted: true, ok: false });
    // The command that finishes it, in the document (a CI step reads it) and on stderr.
    expect(json(r).finish).toMatch(/^tenantctl .*tenant create --from-file \S+ic\.csv --concurrency 1$/);
    expect(r.stderr).toContain(`to finish: ${json(r).finish}`);

    const again = await e.cli(['tenant', 'create', '--from-file', file, '--json']);
    expect(again.code, again.stderr).toBe(0);
    expect(json(again).finish).toBeUndefined();
    for (const s of ['ic-a', 'ic-b', 'ic-c']) expect((await tenant(e, s))?.status).toBe('active');
  }, 300_000);
});
