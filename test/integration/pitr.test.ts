import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { parseDocument } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findPgbackrest } from '../../src/pitr/pgbackrest.js';
import { json, migrateEnv, sleep, tenantDigests, until, withPg, type MigrateEnv } from '../helpers/migrate-env.js';
import { seed, tenant } from '../helpers/seed.js';
import { startTestFleet, superuserUrl, type TestFleet } from '../helpers/test-fleet.js';
import { appUrl } from '../helpers/app-url.js';
import { databaseUrl } from '../../src/fleet/connection-url.js';
import { cli } from '../helpers/cli.js';
import { pitrRepo } from '../../src/pitr/repo.js';

/**
 * Point-in-time restore of one tenant with pgBackRest (issue 20). One private fleet for the file
 * (archive_mode needs a restart: its clusters start archiving, which the shared fleet does not),
 * the least-privileged shard role; what pgBackRest needs (peer authentication for the postgres OS
 * user, archive settings, the stanza) is set up by `dev up` as an operator would. CI installs
 * pgBackRest (.ci/run); elsewhere its absence skips this file with the reason in the test names.
 */
const pgbackrest = await findPgbackrest();
if (!pgbackrest && process.env.CI)
  throw new Error('pgBackRest is not installed: CI must install it (apt-get install -y pgbackrest; .ci/run does)');
const SKIP = pgbackrest ? '' : ' [skipped: pgBackRest is not installed; apt-get install -y pgbackrest]';

/**
 * A 1 MB tmpfs, a real file system whose free space is small: the disk check of restore --at
 * measures it (statfs) like any other. Mounting needs CAP_SYS_ADMIN (root in CI's container);
 * without it that one test is skipped, saying why.
 */
function mountSmall(dir: string): boolean {
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m,mode=0755', 'tmpfs', dir], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
const probe = await mkdtemp(join(tmpdir(), 'tenantctl-pitr-probe-'));
const CAN_MOUNT = mountSmall(probe);
if (CAN_MOUNT) execFileSync('umount', [probe]);
await rm(probe, { recursive: true, force: true });

let fleet: TestFleet;
let e: MigrateEnv;

/** What WAL archiving does within archive_timeout: close the current segment and wait until it is archived. */
async function archiveNow(): Promise<void> {
  const su = superuserUrl(fleet.config.shards[0].url);
  const wal = await withPg(su, async (c) => (await c.query<{ w: string }>('select pg_walfile_name(pg_switch_wal()) as w')).rows[0].w);
  await until(async () =>
    withPg(su, async (c) => (await c.query<{ w: string | null }>('select last_archived_wal as w from pg_stat_archiver')).rows[0].w! >= wal),
  );
}

/** When the base backup command returned (its stop time is at or before this). */
let backupDone = 0;

/**
 * The shard's clock now, between two commits (a commit's time is the shard's), once the
 * recoverable window has opened.
 */
async function timeT(): Promise<string> {
  // The window starts at the base backup's stop, rounded up to the next whole second
  // (src/pitr/window.ts): a T taken within that second would be refused as outside it.
  const windowOpens = backupDone + 1000 - Date.now();
  if (windowOpens > 0) await sleep(windowOpens + 50);
  await sleep(20);
  const t = await withPg(
    superuserUrl(fleet.config.shards[0].url),
    async (c) => (await c.query<{ t: Date }>('select clock_timestamp() as t')).rows[0].t,
  );
  await sleep(20);
  return t.toISOString();
}

/** Per table: the row count and a digest of its rows without the tenant key (a restore --as gives a new key). */
async function content(slug: string): Promise<Record<string, string>> {
  const t = (await tenant(e, slug))!;
  const url = databaseUrl(e.config.shards[0].url, t.database_name);
  return withPg(url, async (c) => {
    const out: Record<string, string> = {};
    for (const table of ['workspaces', 'users', 'projects', 'tasks', 'comments']) {
      const key = table === 'workspaces' ? 'id' : 'tenant_id';
      const r = await c.query<{ n: number; h: string }>(
        `select count(*)::int as n, md5(coalesce(string_agg((to_jsonb(x) - 'tenant_id' - 'id')::text, ',' order by (to_jsonb(x) - 'tenant_id' - 'id')::text), '')) as h
           from "${t.schema_name}"."${table}" x where "${key}" = $1`,
        [t.key],
      );
      out[table] = `${r.rows[0].n}:${r.rows[0].h}`;
    }
    return out;
  });
}

/** The scratch folders the catalog recorded for restores to a point in time of a tenant. */
async function scratchOf(slug: string): Promise<{ scratch: string; status: string }[]> {
  const rows = await e.db
    .selectFrom('operations')
    .select(['args', 'status'])
    .where('kind', '=', 'pitr-restore')
    .where('tenant_slug', '=', slug)
    .execute();
  return rows.map((r) => ({ scratch: (r.args as { scratch: string }).scratch, status: r.status }));
}

describe.skipIf(!pgbackrest)(`restore <slug> --at <time> with pgBackRest${SKIP}`, () => {
  let started = 0;
  beforeAll(async () => {
    started = Date.now();
    fleet = await startTestFleet({ shards: 1, archive: true });
    e = await migrateEnv(fleet, 'pitr');
    await e.create([
      { slug: 'acme', model: 'pool', shard: 'us1' },
      { slug: 'globex', model: 'pool', shard: 'us1' },
      { slug: 'initech', model: 'schema', shard: 'us1' },
      { slug: 'hooli', model: 'database', shard: 'us1' },
      { slug: 'umbrella', model: 'pool', shard: 'us1' },
    ]);
    for (const s of ['acme', 'globex', 'initech', 'hooli', 'umbrella']) await seed(e, s, 200, s);
    const setup = await e.cli(['pitr', 'setup', '--json']);
    expect(setup.code, setup.stderr + setup.stdout).toBe(0);
    const t0 = Date.now();
    const b = await e.cli(['pitr', 'backup', '--type', 'full', '--json']);
    backupDone = Date.now();
    console.log(`pitr backup --type full: ${Date.now() - t0} ms; fleet and tenants ready in ${t0 - started} ms`);
    expect(b.code, b.stderr + b.stdout).toBe(0);
  }, 300_000);
  afterAll(async () => {
    await e?.close();
    await fleet?.stop();
    console.log(`pitr.test.ts: ${((Date.now() - started) / 1000).toFixed(1)} s including the fleet`);
  });

  it('pitr status: the window runs from the base backup to the last archived WAL, archiving healthy', async () => {
    await archiveNow();
    const r = await e.cli(['pitr', 'status', '--json']);
    expect(r.code, r.stderr + r.stdout).toBe(0);
    const [s] = json(r).shards;
    expect(s).toMatchObject({ shard: 'us1', stanza: 'ok', archiveMode: 'on', healthy: true });
    expect(s.backups).toHaveLength(1);
    expect(s.window.from).toBe(s.backups[0].stop);
    expect(s.window.to >= s.window.from).toBe(true);
  });

  it('--replace brings the tenant back to T through its application connection; its neighbour keeps every write made after T', async () => {
    const acme = await appUrl(e, 'acme');
    // The tenant writes after the base backup (replayed from WAL), then T.
    await withPg(acme.url, (c) => c.query(`update "${acme.schema}".tasks set title = title || ' (edited)' where title like 'Task 1%'`));
    const t = await timeT();
    const atT = await content('acme');
    // After T: the tenant deletes half its rows; its neighbour writes.
    await withPg(acme.url, async (c) => {
      await c.query(
        `delete from "${acme.schema}".comments where body like '%1' or body like '%3' or body like '%5' or body like '%7' or body like '%9'`,
      );
      await c.query(`update "${acme.schema}".tasks set status = 'done'`);
    });
    const globex = await appUrl(e, 'globex');
    await withPg(globex.url, (c) => c.query(`update "${globex.schema}".tasks set title = 'after T' where title like 'Task 2%'`));
    const globexAfter = await tenantDigests(e, 'globex');
    expect(await content('acme')).not.toEqual(atT);
    await archiveNow();

    const r = await e.cli(['restore', 'acme', '--at', t, '--replace', '--yes', '--json']);
    expect(r.code, r.stderr + r.stdout).toBe(0);
    const doc = json(r).result;
    console.log(`restore acme --at T --replace: ${JSON.stringify(doc.phases)}, WAL ${doc.walReplayedBytes} B`);
    expect(doc).toMatchObject({ status: 'succeeded', replaced: true, tenant: 'acme', at: t });
    expect(doc.safetyBackup).toMatch(/^acme\./);
    expect(doc.reached <= t || new Date(doc.reached) <= new Date(t)).toBe(true);
    expect(doc.walReplayedBytes).toBeGreaterThan(0);
    expect(doc.tables.find((x: any) => x.table === 'tasks').rows).toBe(200);
    expect(doc.verification).toMatch(/row count and hash/);
    expect(doc.phases.map((p: any) => p.phase)).toEqual(['pgBackRest restore', 'recovery', 'extract', 'load, verify', 'switch']);
    // Progress on stderr, one line per phase (piped: plain lines).
    expect(r.stderr).toMatch(/pgBackRest restore: shard us1/);
    expect(r.stderr).toMatch(/recovery: /);
    expect(await content('acme')).toEqual(atT);
    expect(await tenantDigests(e, 'globex')).toEqual(globexAfter);
    // The application's connection works on the restored rows.
    await withPg(acme.url, async (c) => {
      const n = await c.query<{ n: number }>(`select count(*)::int as n from "${acme.schema}".tasks where status = 'done'`);
      expect(n.rows[0].n).toBe(0);
    });
    // The scratch cluster and folder are gone, and no archive was written but the safety backup.
    for (const s of await scratchOf('acme')) expect(existsSync(s.scratch), s.scratch).toBe(false);
    const list = json(await e.cli(['backup', 'list', 'acme', '--json'])).backups.map((b: any) => b.id);
    expect(list).toEqual([doc.safetyBackup]);
  }, 300_000);

  it('--as gives a schema and a database tenant exactly their rows at T, beside the live ones', async () => {
    const t = await timeT();
    const before = { initech: await content('initech'), hooli: await content('hooli') };
    for (const slug of ['initech', 'hooli']) {
      const app = await appUrl(e, slug);
      await withPg(app.url, (c) => c.query(`delete from "${app.schema}".comments where body like '%2'`));
    }
    const changed = { initech: await content('initech'), hooli: await content('hooli') };
    await archiveNow();
    for (const slug of ['initech', 'hooli'] as const) {
      const r = await e.cli(['restore', slug, '--at', t, '--as', `${slug}-then`, '--json']);
      expect(r.code, r.stderr + r.stdout).toBe(0);
      const doc = json(r).result;
      console.log(`restore ${slug} --at T --as: ${JSON.stringify(doc.phases)}, WAL ${doc.walReplayedBytes} B`);
      expect(doc).toMatchObject({ status: 'succeeded', tenant: `${slug}-then` });
      expect(doc.key).not.toBe((await tenant(e, slug))!.key);
      expect(await content(`${slug}-then`)).toEqual(before[slug]);
      expect(await content(slug)).toEqual(changed[slug]);
    }
  }, 300_000);

  it("a database tenant made after the shard's base backup: its database is not in the backup's manifest, and the whole shard is restored instead", async () => {
    await e.create([{ slug: 'newco', model: 'database', shard: 'us1' }]);
    await seed(e, 'newco', 50, 'newco');
    const t = await timeT();
    const before = await content('newco');
    const app = await appUrl(e, 'newco');
    await withPg(app.url, (c) => c.query(`delete from "${app.schema}".comments`));
    await archiveNow();
    const r = await e.cli(['restore', 'newco', '--at', t, '--as', 'newco-then', '--json']);
    expect(r.code, r.stderr + r.stdout).toBe(0);
    expect(json(r).result).toMatchObject({ status: 'succeeded', tenant: 'newco-then' });
    expect(await content('newco-then')).toEqual(before);
  }, 300_000);

  it('a time outside the window is refused (exit 2) naming the window; nothing is made', async () => {
    const early = await e.cli(['restore', 'acme', '--at', '2020-01-01T00:00:00Z', '--as', 'acme-old']);
    expect(early.code, early.stderr).toBe(2);
    expect(early.stderr).toMatch(/outside shard us1's recoverable window \d{4}-\d\d-\d\dT[\d:.]+Z → \d{4}-\d\d-\d\dT[\d:.]+Z/);
    const late = await e.cli(['restore', 'acme', '--at', new Date(Date.now() + 3_600_000).toISOString(), '--as', 'acme-late', '--json']);
    expect(late.code).toBe(2);
    expect(json(late).error.code).toBe('PITR_WINDOW');
    const noFlag = await e.cli(['restore', 'acme', '--at', new Date().toISOString()]);
    expect(noFlag.code).toBe(2);
    expect(noFlag.stderr).toMatch(/--as <new-slug> or --replace --yes/);
    expect(await tenant(e, 'acme-old')).toBeUndefined();
    expect(await scratchOf('acme-old')).toEqual([]);
  });

  it('--replace in a region that encrypts backups, without the master key, is refused before any recovery; nothing is made', async () => {
    const doc = parseDocument(await readFile(e.configFile, 'utf8'));
    doc.setIn(['regions', e.config.shards[0].region, 'backup', 'encrypt'], true);
    const file = join(dirname(e.configFile), 'encrypting.config.yaml');
    await writeFile(file, doc.toString());
    const before = (await scratchOf('acme')).length;
    // A time inside the window: everything else about the restore would go ahead.
    const t = await timeT();
    // A commit after T, archived: the window reaches past T.
    await withPg(superuserUrl(fleet.config.shards[0].url), (c) => c.query('select txid_current()'));
    await archiveNow();
    const r = await cli(['restore', 'acme', '--at', t, '--replace', '--yes', '--json'], {
      config: file,
      env: { TENANTCTL_BACKUP_KEY: '' },
    });
    expect(r.code, r.stderr + r.stdout).toBe(2);
    expect(json(r).error).toMatchObject({ code: 'BACKUP_KEY', message: expect.stringMatching(/TENANTCTL_BACKUP_KEY is not set/) });
    expect((await scratchOf('acme')).length).toBe(before);
  });

  it('a restore killed during recovery leaves its scratch cluster; the next command removes it', async () => {
    const t = await timeT();
    // A commit after T, archived: the window reaches past T whatever the tests before did.
    await withPg(superuserUrl(fleet.config.shards[0].url), (c) => c.query('select txid_current()'));
    await archiveNow();
    let pid = 0;
    const run = e.cli(['restore', 'globex', '--at', t, '--as', 'globex-k'], {
      env: { TENANTCTL_FAULT: 'pitr.recovery' },
      onSpawn: (p) => (pid = p),
    });
    // A failed spawn rejects it: handled now, thrown at `await run` below (not unhandled meanwhile).
    run.catch(() => undefined);
    const [s] = await until(async () => {
      const rows = await scratchOf('globex');
      return rows.length && existsSync(join(rows[0].scratch, 'pgdata', 'postmaster.pid')) ? rows : null;
    }, 60_000);
    process.kill(pid, 'SIGKILL');
    await run;
    const postmaster = Number((await readFile(join(s.scratch, 'pgdata', 'postmaster.pid'), 'utf8')).split('\n')[0]);
    expect(() => process.kill(postmaster, 0)).not.toThrow();
    const next = await e.cli(['pitr', 'status']);
    expect(next.stderr).toMatch(/was killed; its scratch cluster .* removed/);
    expect(existsSync(s.scratch)).toBe(false);
    await until(async () => {
      try {
        process.kill(postmaster, 0);
        return null;
      } catch {
        return true;
      }
    });
    expect(await scratchOf('globex')).toEqual([{ scratch: s.scratch, status: 'failed' }]);
    expect(await tenant(e, 'globex-k')).toBeUndefined();
  }, 300_000);

  it("a restore killed in its load (rows streamed from the scratch cluster): the tenant's next command removes its scratch folder; no archive but the safety backup; the tenant is as before", async () => {
    const t = await timeT();
    // A commit after T: recovery stops at the first one past the target.
    const globex = await appUrl(e, 'globex');
    await withPg(globex.url, (c) => c.query(`update "${globex.schema}".tasks set title = 'after T2' where title like 'Task 3%'`));
    await archiveNow();
    const before = await tenantDigests(e, 'globex');
    const listed = async () => json(await e.cli(['backup', 'list', 'globex', '--json'])).backups.map((b: { id: string }) => b.id);
    const archivesBefore = await listed();
    let pid = 0;
    const run = e.cli(['restore', 'globex', '--at', t, '--replace', '--yes'], {
      env: { TENANTCTL_FAULT: 'restore.loaded' },
      onSpawn: (p) => (pid = p),
    });
    // A failed spawn rejects it: handled now, thrown at `await run` below (not unhandled meanwhile).
    run.catch(() => undefined);
    let ended: string | null = null;
    void run.then((r) => (ended = `${r.code} ${r.stderr}`));
    await until(async () => {
      if (ended) throw new Error(`restore --at ended before its load: ${ended}`);
      const op = await e.db
        .selectFrom('operations')
        .select('progress')
        .where('kind', '=', 'restore')
        .where('status', '=', 'running')
        .executeTakeFirst();
      return (op?.progress as { phase?: string } | undefined)?.phase === 'loaded' ? true : null;
    }, 120_000);
    process.kill(pid, 'SIGKILL');
    expect((await run).signal).toBe('SIGKILL');
    const rec = await e.db
      .selectFrom('operations')
      .select('args')
      .where('kind', '=', 'pitr-restore')
      .where('tenant_slug', '=', 'globex')
      .where('status', '=', 'running')
      .executeTakeFirstOrThrow();
    const { scratch } = rec.args as { scratch: string };
    // The rows went from the scratch cluster straight into the load: no interim archive, only the safety backup is new.
    expect(rec.args).not.toHaveProperty('interim');
    const safety = (await listed()).filter((id: string) => !archivesBefore.includes(id));
    expect(safety).toHaveLength(1);

    // The tenant's next command (any operation of it) runs the one sweep first.
    const next = await e.cli(['backup', 'create', 'globex', '--json']);
    expect(next.code, next.stderr + next.stdout).toBe(0);
    expect(next.stdout + next.stderr).toMatch(/restore to a point in time \d+ of globex was killed; its scratch cluster .* removed/);
    expect(existsSync(scratch)).toBe(false);
    expect(await tenantDigests(e, 'globex')).toEqual(before);
    const running = await e.db
      .selectFrom('operations')
      .select(['kind', 'status'])
      .where('tenant_slug', '=', 'globex')
      .where('status', '=', 'running')
      .execute();
    expect(running).toEqual([]);
  }, 300_000);

  it.skipIf(!CAN_MOUNT)(
    `a scratch restore that does not fit is refused with the numbers; nothing is made${CAN_MOUNT ? '' : ' [skipped: cannot mount a tmpfs here (needs CAP_SYS_ADMIN)]'}`,
    async () => {
      const small = join(dirname(e.configFile), 'small-scratch');
      await mkdir(small, { recursive: true });
      expect(mountSmall(small)).toBe(true);
      try {
        const doc = parseDocument(await readFile(e.configFile, 'utf8'));
        const region = e.config.shards[0].region;
        // The repository the embedded fleet archives into (its default), the scratch folder on the tmpfs.
        doc.setIn(['regions', region, 'pitr'], { repo: pitrRepo(e.config, region)!.repo, scratch: small });
        const file = join(dirname(e.configFile), 'small-scratch.config.yaml');
        await writeFile(file, doc.toString());
        const t = await timeT();
        await archiveNow();
        const r = await cli(['restore', 'initech', '--at', t, '--as', 'initech-small', '--json'], { config: file });
        expect(r.code, r.stderr + r.stdout).toBe(2);
        const err = json(r).error;
        expect(err.code, err.message).toBe('PITR_DISK');
        expect(err.message).toMatch(new RegExp(`needs about [\\d.]+ MB and ${small} has 1\\.0 MB free`));
        expect(err.hint).toMatch(/regions\.<region>\.pitr\.scratch/);
        expect(await readdir(small)).toEqual([]);
        expect(await tenant(e, 'initech-small')).toBeUndefined();
        expect(await scratchOf('initech')).toEqual(
          expect.not.arrayContaining([expect.objectContaining({ scratch: expect.stringContaining(small) })]),
        );
      } finally {
        execFileSync('umount', [small]);
      }
    },
  );

  it('a tenant that lived in another placement at T is refused (exit 2) naming where it was; nothing is made', async () => {
    const t = await timeT();
    const moved = await e.cli(['move', 'umbrella', '--to-shard', 'us1', '--to-model', 'schema', '--yes', '--json']);
    expect(moved.code, moved.stderr + moved.stdout).toBe(0);
    await archiveNow();
    const r = await e.cli(['restore', 'umbrella', '--at', t, '--as', 'umbrella-then']);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toMatch(
      /tenant "umbrella" was moved at \S+ \(from us1\/pool_\S+ to us1\/schemas_\S+\): at \S+ its rows were on us1\/pool_\S+/,
    );
    expect(r.stderr).toMatch(/restore to a time after the move/);
    expect(await tenant(e, 'umbrella-then')).toBeUndefined();
    expect(await scratchOf('umbrella')).toEqual([]);
  }, 120_000);
});
