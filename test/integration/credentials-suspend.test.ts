import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { parseDocument } from 'yaml';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { createViaFile } from '../helpers/create-file.js';
import { json, ownMigrateFleet, until, withPg, type MigrateEnv } from '../helpers/migrate-env.js';
import { cli } from '../helpers/cli.js';
import { superuserUrl } from '../helpers/test-fleet.js';
import { databaseUrl } from '../../src/fleet/connection-url.js';
import { insertOperation } from '../../src/operations/operation-record.js';

/**
 * Issue 16, items 4 and 5, tested through what the application connects with: the URL `resolve`
 * prints (plus the password where it shows ***), with tenantctl as the least-privileged shard
 * role. Credentials: `tenant credentials` prints a password once and the printed URL then runs
 * unqualified queries in every model. Suspend: a suspended tenant's application can neither read
 * nor write, in every model, its open sessions are ended, and `resume` lets it back in; other
 * tenants are untouched throughout.
 */
const { env } = ownMigrateFleet();

async function ok(e: MigrateEnv, args: string[]) {
  const r = await e.cli([...args, '--json']);
  expect(r.code, `${args.join(' ')}: ${r.stdout}${r.stderr}`).toBe(0);
  return json(r);
}

/** A URL resolve printed, with the password put where it shows ***. */
function withPassword(printed: string, password: string): string {
  expect(printed).toContain(':***@');
  return printed.replace(':***@', `:${encodeURIComponent(password)}@`);
}

/** The URL resolve prints for the tenant, with the password put where it shows ***. */
async function appUrl(e: MigrateEnv, slug: string, password: string): Promise<string> {
  return withPassword((await ok(e, ['resolve', slug])).url, password);
}

/** A client connected as the application; errors of a session ended under it are kept, not thrown. */
async function connect(url: string): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: url });
  c.on('error', () => undefined);
  await c.connect();
  return c;
}

async function keyOf(e: MigrateEnv, slug: string): Promise<string> {
  return (await e.db.selectFrom('tenants').select('key').where('slug', '=', slug).executeTakeFirstOrThrow()).key;
}

/** Read the tenant's workspaces and write one, unqualified, as the application does. */
async function readWrite(c: pg.Client, key: string): Promise<string[]> {
  await c.query(`insert into workspaces (id, name) values ($1, 'w') on conflict (id) do update set name = excluded.name`, [key]);
  await c.query('insert into users (tenant_id, email, display_name) values ($1, $2, $3)', [key, `${Math.random()}@x.io`, 'u']);
  return (await c.query<{ name: string }>('select name from workspaces')).rows.map((r) => r.name);
}

describe('tenant credentials', () => {
  it('prints a password once; the URL resolve prints then works as printed, per model; pool tenants have no role of their own', async () => {
    const e = await env('cred');
    await createViaFile(e, [
      { slug: 'cr-s', model: 'schema', shard: 'us1' },
      { slug: 'cr-d', model: 'database', shard: 'eu1' },
      { slug: 'cr-p', model: 'pool', shard: 'us1' },
    ]);

    // resolve says when a tenant role has no password yet, and what to run.
    expect((await ok(e, ['resolve', 'cr-s'])).credentials).toBe('no password yet: run tenantctl tenant credentials cr-s (prints it once)');
    const plainResolve = await e.cli(['resolve', 'cr-d']);
    expect(plainResolve.stdout).toMatch(/^credentials +no password yet: run tenantctl tenant credentials cr-d/m);

    const passwords: string[] = [];
    // The URL resolve prints, per tenant (its placement does not change in this test; the
    // password is *** in it).
    const printed: Record<string, string> = {};
    for (const [slug, schema] of [
      ['cr-s', 't_cr_s'],
      ['cr-d', 'app'],
    ]) {
      const r = await e.cli(['tenant', 'credentials', slug, '--json']);
      expect(r.code, r.stdout + r.stderr).toBe(0);
      const doc = json(r);
      expect(doc).toMatchObject({
        command: 'tenant credentials',
        ok: true,
        tenant: slug,
        rotated: false,
        username: `tenant_${slug.replace('-', '_')}`,
      });
      expect(doc.password).toMatch(/^[A-Za-z0-9_-]{32}$/);
      expect(r.stdout.split(doc.password).length - 1).toBe(1);
      expect(r.stderr).not.toContain(doc.password);
      passwords.push(doc.password);

      // Exactly what resolve prints, plus the password: unqualified queries run as printed.
      printed[slug] = (await ok(e, ['resolve', slug])).url;
      const app = await connect(withPassword(printed[slug], doc.password));
      try {
        expect(await readWrite(app, await keyOf(e, slug))).toEqual(['w']);
        expect((await app.query('select count(*)::int as n from users')).rows[0].n).toBe(1);
      } finally {
        await app.end();
      }
      // The role's own search_path, for clients that drop the URL's options (a pooler).
      const bare = new URL(withPassword(printed[slug], doc.password));
      bare.search = '';
      const raw = await connect(bare.toString());
      try {
        expect((await raw.query('show search_path')).rows[0].search_path).toBe(schema);
        expect((await raw.query('select count(*)::int as n from workspaces')).rows[0].n).toBe(1);
      } finally {
        await raw.end();
      }
    }
    const resolvedSet = await ok(e, ['resolve', 'cr-s']);
    expect(resolvedSet.credentials).toMatch(/^set by tenantctl at \d{4}-.*--rotate sets a new one\)$/);
    expect(resolvedSet.url).toBe(printed['cr-s']);

    // Again without --rotate: refused, the password cannot be shown again, the old one still works.
    const again = await e.cli(['tenant', 'credentials', 'cr-s', '--json']);
    expect(again.code).toBe(2);
    expect(json(again).error).toMatchObject({ code: 'CREDENTIALS_EXIST' });
    expect(json(again).error.message).toMatch(/role tenant_cr_s already has a password .*cannot print it again/);
    expect(json(again).error.hint).toMatch(/--rotate/);
    // A session opened with the old password (a leaked one, say) before the rotation.
    const leaked = await connect(withPassword(printed['cr-s'], passwords[0]));

    // --rotate: a new password (plain output: the password alone on stdout), the old one refused at once.
    const rot = await e.cli(['tenant', 'credentials', 'cr-s', '--rotate']);
    expect(rot.code, rot.stderr).toBe(0);
    // ... and what it let in is ended: it can neither read on nor set a password of its own over the new one.
    expect(rot.stderr).toMatch(/the old password no longer works and the session it opened was ended/);
    await expect(leaked.query(`alter role current_user password 'attacker-kept'`)).rejects.toThrow();
    await leaked.end().catch(() => undefined);
    const fresh = rot.stdout.trim();
    expect(fresh).toMatch(/^[A-Za-z0-9_-]{32}$/);
    expect(fresh).not.toBe(passwords[0]);
    expect(rot.stderr).toMatch(/new password for tenant_cr_s .*shown once/);
    expect(rot.stderr).not.toContain(fresh);
    await expect(connect(withPassword(printed['cr-s'], passwords[0]))).rejects.toMatchObject({ code: '28P01' });
    const rotated = await connect(withPassword(printed['cr-s'], fresh));
    expect((await rotated.query('select count(*)::int as n from workspaces')).rows[0].n).toBe(1);
    await rotated.end();
    passwords.push(fresh);

    // A rotation killed after it took LOGIN away (its record left running, the role NOLOGIN): the
    // tenant's next command (a backup here, which touches no login itself) closes the record and gives the login back.
    const t = (await e.db.selectFrom('tenants').selectAll().where('slug', '=', 'cr-s').executeTakeFirstOrThrow())!;
    await e.q(t.shard, 'postgres', 'alter role tenant_cr_s nologin');
    await insertOperation(e.db, { kind: 'credentials', tenant: 'cr-s', holder: 'a killed tenantctl' });
    await expect(connect(withPassword(printed['cr-s'], fresh))).rejects.toMatchObject({ code: '28000' });
    const backup = await e.cli(['backup', 'create', 'cr-s', '--json']);
    expect(backup.code, backup.stdout + backup.stderr).toBe(0);
    expect(json(backup).results[0].warnings.join('; ')).toMatch(
      /credentials \d+ of cr-s was killed; closed; its role tenant_cr_s may log in again/,
    );
    await (await connect(withPassword(printed['cr-s'], fresh))).end();
    expect(
      await e.db.selectFrom('operations').select('id').where('tenant_slug', '=', 'cr-s').where('status', '=', 'running').execute(),
    ).toEqual([]);

    // A pool tenant: exit 2, naming the serving role and where its password is.
    const pool = await e.cli(['tenant', 'credentials', 'cr-p', '--json']);
    expect(pool.code).toBe(2);
    expect(json(pool).error).toMatchObject({ code: 'NO_OWN_ROLE' });
    expect(json(pool).error.message).toMatch(/no role of its own; its application connects as the serving role app_user/);
    expect(json(pool).error.hint).toMatch(/servingRole\.password in the config/);
    // The pool URL sets the pool schema too: unqualified queries work as printed.
    const poolDoc = await ok(e, ['resolve', 'cr-p']);
    // (and application_name = the slug, so its sessions are counted under it: issue 19)
    const poolUrl = new URL(poolDoc.url);
    expect(poolUrl.searchParams.get('options')).toMatch(/^-c app\.tenant_id=[0-9a-f-]+ -c search_path=app/);
    expect(poolUrl.searchParams.get('application_name')).toBe('cr-p');
    expect(poolDoc.credentials).toBe("the serving role's: servingRole.password in the config");
    const poolApp = await connect(withPassword(poolDoc.url, e.config.servingRole.password ?? ''));
    try {
      expect(await readWrite(poolApp, await keyOf(e, 'cr-p'))).toEqual(['w']);
    } finally {
      await poolApp.end();
    }

    // Never stored or logged: not in events, tenant show, or anything another command prints.
    const events = await e.db.selectFrom('events').selectAll().where('tenant_slug', 'in', ['cr-s', 'cr-d']).execute();
    // (the refused second call is recorded too, as every operation's failure is: issue 18's engine)
    expect(events.map((ev) => ev.action).filter((a) => a.startsWith('credentials'))).toEqual([
      'credentials set',
      'credentials set',
      'credentials failed',
      'credentials rotated',
    ]);
    const show = await e.cli(['tenant', 'show', 'cr-s']);
    const showJson = await e.cli(['tenant', 'show', 'cr-s', '--json']);
    const resolved = await e.cli(['resolve', 'cr-s', '--json']);
    for (const pw of passwords) {
      expect(JSON.stringify(events)).not.toContain(pw);
      for (const out of [show, showJson, resolved, again]) expect(out.stdout + out.stderr).not.toContain(pw);
    }
  }, 120_000);
});

describe('tenant suspend', () => {
  it("refuses a suspended tenant's application in every model, ends its sessions, and resume lets it back; other tenants are untouched", async () => {
    const e = await env('susp');
    await createViaFile(e, [
      { slug: 'su-a', model: 'pool', shard: 'us1' },
      { slug: 'su-b', model: 'pool', shard: 'us1' },
      { slug: 'su-s', model: 'schema', shard: 'us1' },
      { slug: 'su-d', model: 'database', shard: 'eu1' },
      { slug: 'su-t', model: 'schema', shard: 'us1' },
    ]);
    const serving = e.config.servingRole.password ?? '';
    const pw: Record<string, string> = { 'su-a': serving, 'su-b': serving };
    for (const slug of ['su-s', 'su-d', 'su-t']) pw[slug] = (await ok(e, ['tenant', 'credentials', slug])).password;
    const keys: Record<string, string> = {};
    for (const slug of Object.keys(pw)) keys[slug] = await keyOf(e, slug);
    const urls: Record<string, string> = {};
    for (const slug of Object.keys(pw)) urls[slug] = await appUrl(e, slug, pw[slug]);

    // Every application connected and writing before the suspend.
    const apps: Record<string, pg.Client> = {};
    for (const slug of Object.keys(pw)) {
      apps[slug] = await connect(urls[slug]);
      expect(await readWrite(apps[slug], keys[slug])).toEqual(['w']);
    }
    const others = async () => {
      for (const slug of ['su-b', 'su-t']) expect(await readWrite(apps[slug], keys[slug]), slug).toEqual(['w']);
    };

    try {
      for (const slug of ['su-a', 'su-s', 'su-d']) {
        const r = await e.cli(['tenant', 'suspend', slug]);
        expect(r.code, r.stderr).toBe(0);
        expect(r.stdout).toMatch(new RegExp(`^${slug} is suspended: `));
      }
      // Pool: the open connection (the serving role) is refused reads and writes, with a reason.
      await expect(apps['su-a'].query('select name from workspaces')).rejects.toMatchObject({
        code: '42501',
        message: `tenant su-a (key ${keys['su-a']}) is suspended: its rows cannot be read or written`,
        hint: 'tenantctl tenant resume su-a lets it back in, unless it is being deleted (tenantctl tenant show su-a)',
      });
      await expect(
        apps['su-a'].query(`insert into users (tenant_id, email, display_name) values ($1, 'n@x.io', 'n')`, [keys['su-a']]),
      ).rejects.toMatchObject({ code: '42501' });
      // ... and so is a new one.
      const late = await connect(urls['su-a']);
      await expect(late.query('select count(*) from users')).rejects.toMatchObject({ code: '42501' });
      await late.end();
      // Schema and database: the open sessions were ended, and no new one may log in.
      for (const slug of ['su-s', 'su-d']) {
        await expect(apps[slug].query('select 1'), slug).rejects.toThrow();
        await expect(connect(urls[slug]), slug).rejects.toMatchObject({ code: '28000' });
      }
      await others();

      // Twice: nothing to do, exit 0, no second event (cron re-runs).
      const eventsBefore = (await e.db.selectFrom('events').selectAll().where('action', '=', 'suspended').execute()).length;
      for (const slug of ['su-a', 'su-s', 'su-d']) {
        const r = await e.cli(['tenant', 'suspend', slug, '--json']);
        expect(r.code, r.stdout).toBe(0);
        expect(json(r)).toMatchObject({ ok: true, changed: false, tenant: { status: 'suspended' } });
        expect((await e.cli(['tenant', 'suspend', slug])).stdout).toBe(`${slug} is already suspended; nothing to do\n`);
      }
      expect((await e.db.selectFrom('events').selectAll().where('action', '=', 'suspended').execute()).length).toBe(eventsBefore);

      // A later migration's table (and the pool's re-applied row-level security) keeps the suspension.
      await e.addMigration('0004_notes.sql', 'create table notes (tenant_id {{tenant_key_type}} not null, body text);\n');
      await ok(e, ['migrate', 'up']);
      await e.q('us1', `pool_${e.name}`, `insert into app.notes (tenant_id, body) values ($1, 'a')`, [keys['su-a']]);
      const poolApp = await connect(urls['su-a']);
      await expect(poolApp.query('select * from notes')).rejects.toMatchObject({ code: '42501' });
      await expect(poolApp.query(`insert into notes (tenant_id, body) values ($1, 'a2')`, [keys['su-a']])).rejects.toMatchObject({
        code: '42501',
      });
      await expect(poolApp.query('select name from workspaces')).rejects.toMatchObject({ code: '42501' });
      await poolApp.end();
      await apps['su-b'].query('insert into notes (tenant_id, body) values ($1, $2)', [keys['su-b'], 'b']);
      expect((await apps['su-b'].query('select body from notes')).rows).toEqual([{ body: 'b' }]);
      await others();

      // Resume: access is back, with the rows as they were; resuming again is a no-op.
      for (const slug of ['su-a', 'su-s', 'su-d']) {
        const r = await e.cli(['tenant', 'resume', slug]);
        expect(r.code, r.stderr).toBe(0);
        expect(r.stdout).toMatch(new RegExp(`^${slug} is active`));
        const again = await e.cli(['tenant', 'resume', slug, '--json']);
        expect(again.code).toBe(0);
        expect(json(again)).toMatchObject({ changed: false, tenant: { status: 'active' } });
        const back = await connect(urls[slug]);
        try {
          expect(await readWrite(back, keys[slug]), slug).toEqual(['w']);
          expect((await back.query<{ n: number }>('select count(*)::int as n from users')).rows[0].n, slug).toBe(2);
        } finally {
          await back.end();
        }
      }
      expect((await apps['su-a'].query('select count(*)::int as n from users')).rows[0].n).toBe(2);
      await others();

      // A deleted suspended tenant's key, re-used by a new tenant, starts active.
      await ok(e, ['tenant', 'suspend', 'su-a']);
      await ok(e, ['tenant', 'delete', 'su-a', '--yes', '--skip-backup']);
      // Its application, still connected with the key, is refused writes: they would be rows no tenant owns.
      await expect(
        apps['su-a'].query(`insert into users (tenant_id, email, display_name) values ($1, 'gone@x.io', 'g')`, [keys['su-a']]),
      ).rejects.toMatchObject({ code: '25006', message: 'su-a was deleted: this pool no longer takes writes of its key' });
      await others();
      await ok(e, ['tenant', 'create', 'su-c', '--model', 'pool', '--shard', 'us1', '--key', keys['su-a']]);
      expect(await readWrite(apps['su-a'], keys['su-a'])).toEqual(['w']);
      await others();
    } finally {
      await Promise.all(Object.values(apps).map((c) => c.end().catch(() => undefined)));
    }
  }, 180_000);
});

describe('a tenant delete whose final backup fails, or is killed', () => {
  it('failed: access and status given back; killed: the tenant suspended in the catalog, as its application finds it; resume gives the access back; delete again finishes', async () => {
    const e = await env('delk');
    await createViaFile(e, [{ slug: 'dk-s', model: 'schema', shard: 'us1' }]);
    const password = (await ok(e, ['tenant', 'credentials', 'dk-s'])).password;
    const key = await keyOf(e, 'dk-s');
    const url = await appUrl(e, 'dk-s', password);
    const app = await connect(url);
    expect(await readWrite(app, key)).toEqual(['w']);
    await app.end();

    // A final backup that fails deletes nothing and gives everything back: the access and `active`.
    const failed = await e.cli(['tenant', 'delete', 'dk-s', '--yes', '--json'], { env: { TENANTCTL_FAULT: 'backup.copy:fail' } });
    expect(failed.code, failed.stdout).toBe(1);
    expect(json(failed).error).toMatchObject({ code: 'BACKUP_FAILED', message: expect.stringMatching(/nothing was deleted/) });
    expect((await ok(e, ['tenant', 'show', 'dk-s'])).tenant).toMatchObject({ status: 'active', statusDetail: null });
    const still = await connect(url);
    try {
      expect(await readWrite(still, key)).toEqual(['w']);
    } finally {
      await still.end();
    }

    // Paused in the final backup's copy (after the access was cut), then SIGKILLed.
    const dir = await mkdtemp(join(tmpdir(), 'tenantctl-delk-'));
    const marker = join(dir, 'paused');
    let pid = 0;
    const run = e.cli(['tenant', 'delete', 'dk-s', '--yes'], {
      env: { TENANTCTL_FAULT: 'backup.copy:pause', TENANTCTL_FAULT_PAUSED_FILE: marker },
      onSpawn: (p) => (pid = p),
    });
    run.catch(() => undefined);
    await until(async () => existsSync(marker), 60_000, 50);
    process.kill(pid, 'SIGKILL');
    expect((await run).signal).toBe('SIGKILL');
    await rm(dir, { recursive: true, force: true });

    // What the catalog says is what the application meets: no login.
    const shown = (await ok(e, ['tenant', 'show', 'dk-s'])).tenant;
    expect(shown).toMatchObject({ status: 'suspended', statusDetail: expect.stringMatching(/^access cut by tenant delete/) });
    await expect(connect(url)).rejects.toMatchObject({ code: '28000' });

    // Resume says it changed something, and the application is back.
    const resumed = await ok(e, ['tenant', 'resume', 'dk-s']);
    expect(resumed).toMatchObject({ changed: true, tenant: { status: 'active' } });
    expect((await ok(e, ['tenant', 'show', 'dk-s'])).tenant.statusDetail).toBeNull();
    const back = await connect(url);
    try {
      expect(await readWrite(back, key)).toEqual(['w']);
    } finally {
      await back.end();
    }
    // And a delete run again finishes, with its final backup.
    const del = await ok(e, ['tenant', 'delete', 'dk-s', '--yes']);
    expect(del.finalBackup).toBeTruthy();
    expect(await e.db.selectFrom('tenants').select('slug').where('slug', '=', 'dk-s').execute()).toEqual([]);

    // Killed past the point of no return (its placement removed, the catalog row not yet): what
    // show and doctor say is what works, a delete again; not "before its final backup … or resume".
    await createViaFile(e, [{ slug: 'dk-r', model: 'schema', shard: 'us1' }]);
    const dir2 = await mkdtemp(join(tmpdir(), 'tenantctl-delr-'));
    const marker2 = join(dir2, 'paused');
    const run2 = e.cli(['tenant', 'delete', 'dk-r', '--yes', '--skip-backup'], {
      env: { TENANTCTL_FAULT: 'delete.removed:pause', TENANTCTL_FAULT_PAUSED_FILE: marker2 },
      onSpawn: (p) => (pid = p),
    });
    run2.catch(() => undefined);
    await until(async () => existsSync(marker2), 60_000, 50);
    process.kill(pid, 'SIGKILL');
    expect((await run2).signal).toBe('SIGKILL');
    await rm(dir2, { recursive: true, force: true });
    expect((await ok(e, ['tenant', 'show', 'dk-r'])).tenant).toMatchObject({
      status: 'deleting',
      statusDetail: 'no final backup (--skip-backup, or nothing to back up); only a delete finishes it: tenantctl tenant delete dk-r --yes',
    });
    const checks = json(await e.cli(['doctor', '--json'])).checks as { check: string; detail: string }[];
    expect(checks.find((c) => c.check === 'killed operations')!.detail).toMatch(
      /dk-r: delete \d+ still running \(run the delete again to finish it\)/,
    );
    await ok(e, ['tenant', 'delete', 'dk-r', '--yes']);
    expect(await e.db.selectFrom('tenants').select('slug').where('slug', '=', 'dk-r').execute()).toEqual([]);
  }, 120_000);
});

describe('a suspended tenant that moves', () => {
  it('stays suspended at its new placement (pool and schema, to another shard), and resume lets it in there', async () => {
    const e = await env('smove');
    await createViaFile(e, [
      { slug: 'sm-p', model: 'pool', shard: 'us1' },
      { slug: 'sm-s', model: 'schema', shard: 'us1' },
    ]);
    const pw: Record<string, string> = { 'sm-p': e.config.servingRole.password ?? '' };
    pw['sm-s'] = (await ok(e, ['tenant', 'credentials', 'sm-s'])).password;
    const keys: Record<string, string> = {};
    // The URLs from before the move (us1): the old placements stay until move complete.
    const oldUrls: Record<string, string> = {};
    for (const slug of Object.keys(pw)) {
      keys[slug] = await keyOf(e, slug);
      oldUrls[slug] = await appUrl(e, slug, pw[slug]);
      const app = await connect(oldUrls[slug]);
      await readWrite(app, keys[slug]);
      await app.end();
      await ok(e, ['tenant', 'suspend', slug]);
      const moved = await e.cli(['move', slug, '--to-shard', 'eu1', '--yes', '--json']);
      expect(moved.code, moved.stdout + moved.stderr).toBe(0);
      expect((await ok(e, ['tenant', 'show', slug])).tenant).toMatchObject({ shard: 'eu1', status: 'suspended' });
    }
    // The role on eu1 is new (roles are per cluster): it gets a password there, and no LOGIN.
    pw['sm-s'] = (await ok(e, ['tenant', 'credentials', 'sm-s'])).password;
    // Where resolve points now (eu1); resume changes no placement, so the same URLs serve after it.
    const urls: Record<string, string> = {};
    for (const slug of Object.keys(pw)) urls[slug] = await appUrl(e, slug, pw[slug]);
    const pool = await connect(urls['sm-p']);
    await expect(pool.query('select name from workspaces')).rejects.toMatchObject({ code: '42501' });
    await pool.end();
    await expect(connect(urls['sm-s'])).rejects.toMatchObject({ code: '28000' });

    for (const slug of Object.keys(pw)) {
      await ok(e, ['tenant', 'resume', slug]);
      const app = await connect(urls[slug]);
      expect(await readWrite(app, keys[slug]), slug).toEqual(['w']);
      await app.end();
      // The application still on its old URL is told where the tenant lives now, not that it is
      // suspended (nor, for the schema tenant, refused its login).
      const old = await connect(oldUrls[slug]);
      await expect(readWrite(old, keys[slug]), slug).rejects.toThrow(/has moved: it lives at/);
      await old.end();
    }
    // Suspended again before move complete: the old placement, still readable, is cut off too.
    for (const slug of Object.keys(pw)) await ok(e, ['tenant', 'suspend', slug]);
    const oldPool = await connect(oldUrls['sm-p']);
    await expect(oldPool.query('select name from workspaces')).rejects.toMatchObject({ code: '42501' });
    await oldPool.end();
    await expect(connect(oldUrls['sm-s'])).rejects.toMatchObject({ code: '28000' });
  }, 240_000);
});

describe('a pool suspend and REPEATABLE READ transactions begun before it', () => {
  it('the suspended tenant is told to retry (40001), then refused as suspended; a neighbour retries once and reads on', async () => {
    const e = await env('srr');
    await createViaFile(e, [
      { slug: 'sr-a', model: 'pool', shard: 'us1' },
      { slug: 'sr-b', model: 'pool', shard: 'us1' },
    ]);
    // The pool's suspension policies are made by its first suspend (DDL, which open transactions would hold up).
    await ok(e, ['tenant', 'suspend', 'sr-b']);
    await ok(e, ['tenant', 'resume', 'sr-b']);
    const pw = e.config.servingRole.password ?? '';
    const apps = { a: await connect(await appUrl(e, 'sr-a', pw)), b: await connect(await appUrl(e, 'sr-b', pw)) };
    const read = (c: pg.Client) =>
      c.query('select count(*)::int as n from workspaces').then(
        (r) => r.rows[0].n as number,
        (err) => err,
      );
    // A row each: a statement that finds no row of the tenant never evaluates the policy's check.
    await readWrite(apps.a, await keyOf(e, 'sr-a'));
    await readWrite(apps.b, await keyOf(e, 'sr-b'));
    for (const c of Object.values(apps)) {
      await c.query('begin isolation level repeatable read');
      expect(await read(c)).toBe(1);
    }
    await ok(e, ['tenant', 'suspend', 'sr-a']);
    const retry = { code: '40001', message: expect.stringMatching(/was suspended after this transaction took its snapshot: retry/) };
    for (const c of Object.values(apps)) {
      expect(await read(c)).toMatchObject(retry);
      await c.query('rollback');
      await c.query('begin isolation level repeatable read');
    }
    expect(await read(apps.a)).toMatchObject({ code: '42501', message: expect.stringMatching(/tenant sr-a .*is suspended/) });
    expect(await read(apps.b)).toBe(1);
    for (const c of Object.values(apps)) {
      await c.query('rollback');
      await c.end();
    }
  }, 120_000);
});

describe('credentials of a tenant whose move to another shard is switched, not completed', () => {
  it('--rotate reaches the old placement too: the old password neither reads there nor outlives it, and a rollback finds the new one working; without --rotate its password stays', async () => {
    const e = await env('cmove');
    await createViaFile(e, [{ slug: 'cm-s', model: 'schema', shard: 'us1' }]);
    const key = await keyOf(e, 'cm-s');
    const first = (await ok(e, ['tenant', 'credentials', 'cm-s'])).password;
    const oldUrl = await appUrl(e, 'cm-s', first);
    const withPw = (pw: string) => oldUrl.replace(`:${encodeURIComponent(first)}@`, `:${encodeURIComponent(pw)}@`);
    const moved = await e.cli(['move', 'cm-s', '--to-shard', 'eu1', '--yes', '--json']);
    expect(moved.code, moved.stdout + moved.stderr).toBe(0);
    // The role on eu1 was made by the move: its first password. us1's role keeps its own.
    const second = await ok(e, ['tenant', 'credentials', 'cm-s']);
    expect(second.keptSource).toBeUndefined();
    const reader = await connect(oldUrl);
    expect((await reader.query('select count(*)::int as n from workspaces')).rows[0].n).toBe(0);
    await expect(readWrite(reader, key)).rejects.toThrow(/has moved: it lives at/);
    // Rotated: the password from before neither reads the old placement nor keeps its session there.
    const third = await ok(e, ['tenant', 'credentials', 'cm-s', '--rotate']);
    expect(third.keptSource).toEqual({ shard: 'us1', role: third.username, sessionsEnded: 1 });
    await expect(reader.query('select 1')).rejects.toThrow();
    await expect(connect(oldUrl)).rejects.toMatchObject({ code: '28P01' });
    await expect(connect(withPw(second.password))).rejects.toMatchObject({ code: '28P01' });
    // Rolled back: the application's current password works at the old placement, which serves again.
    const back = await e.cli(['move', 'rollback', 'cm-s', '--yes', '--json']);
    expect(back.code, back.stdout + back.stderr).toBe(0);
    expect(withPw(third.password)).toBe(await appUrl(e, 'cm-s', third.password));
    const app = await connect(withPw(third.password));
    expect(await readWrite(app, key)).toEqual(['w']);
    await app.end();
  }, 240_000);

  it('a kept placement that cannot be changed now: the password is still printed, with a warning naming what to run', async () => {
    const e = await env('cmheld');
    await createViaFile(e, [{ slug: 'cm-h', model: 'schema', shard: 'us1' }]);
    await ok(e, ['tenant', 'credentials', 'cm-h']);
    const moved = await e.cli(['move', 'cm-h', '--to-shard', 'eu1', '--yes', '--json']);
    expect(moved.code, moved.stdout + moved.stderr).toBe(0);
    await ok(e, ['tenant', 'credentials', 'cm-h']);
    // An administrator's transaction left open on us1 holds the old placement's role.
    const admin = await connect(superuserUrl(e.config.shards.find((s) => s.name === 'us1')!.url));
    await admin.query(`begin; alter role tenant_cm_h valid until 'infinity'`);
    try {
      const r = await e.cli(['tenant', 'credentials', 'cm-h', '--rotate']);
      expect(r.code, r.stdout + r.stderr).toBe(0);
      expect(r.stderr).toMatch(
        /warning: not set on tenant_cm_h at shard us1, the old placement its move keeps \(.+\): .*tenantctl tenant credentials cm-h --rotate once shard us1 answers/,
      );
      const app = await connect(await appUrl(e, 'cm-h', r.stdout.trim()));
      await app.query('select 1');
      await app.end();
    } finally {
      await admin.query('rollback');
      await admin.end();
    }
    expect((await ok(e, ['tenant', 'credentials', 'cm-h', '--rotate'])).keptSource).toMatchObject({ shard: 'us1', sessionsEnded: 0 });
  }, 240_000);
});

describe('a config whose tenantKey.type changed after the pool was made', () => {
  it('is named by create, backup and doctor (exit 2, nothing made), not met as "operator does not exist"', async () => {
    const e = await env('ktype');
    await ok(e, ['tenant', 'create', 'kt-a', '--model', 'pool', '--shard', 'us1']);
    const doc = parseDocument(await readFile(e.configFile, 'utf8'));
    doc.setIn(['tenantKey', 'type'], 'bigint');
    const edited = join(dirname(e.configFile), 'edited-key-type.yaml');
    await writeFile(edited, doc.toString());
    const named = {
      code: 'CONFIG_INVALID',
      message: expect.stringMatching(/^tenantKey\.type is bigint, but the pool us1\/.+ was made with another: .*tenant_id is uuid/),
    };
    const create = await cli(['tenant', 'create', 'kt-b', '--model', 'pool', '--shard', 'us1', '--json'], { config: edited });
    expect(create.code, create.stdout + create.stderr).toBe(2);
    expect(json(create).error).toMatchObject(named);
    expect(await e.db.selectFrom('tenants').select('slug').where('slug', '=', 'kt-b').execute()).toEqual([]);
    const backup = await cli(['backup', 'create', 'kt-a', '--json'], { config: edited });
    expect(json(backup).results[0].error).toMatchObject({
      code: 'CONFIG_INVALID',
      message: expect.stringMatching(/^tenantKey\.type is bigint/),
    });
    const doctor = json(await cli(['doctor', '--json'], { config: edited }));
    expect(doctor.checks.find((c: { check: string }) => c.check === 'pool tables on us1')).toMatchObject({
      ok: false,
      detail: expect.stringMatching(/^tenantKey\.type is bigint, but .*tenant_id is uuid.*: put tenantKey\.type back/),
    });
    // The config as the fleet was made: the same commands work.
    await ok(e, ['backup', 'create', 'kt-a']);
  });
});

/** A transaction the tenant leaves open for as long as it likes (its idle timeout off). */
async function beginLeftOpen(c: pg.Client): Promise<pg.Client> {
  await c.query('set idle_in_transaction_session_timeout = 0');
  await c.query('begin');
  return c;
}

/** `tenant delete` while another session holds something of it: exit 0 (it failed on lock_timeout). */
async function deletesAnyway(e: MigrateEnv, slug: string): Promise<void> {
  const deleted = await e.cli(['tenant', 'delete', slug, '--yes', '--skip-backup']);
  expect(deleted.code, deleted.stdout + deleted.stderr).toBe(0);
}

describe('a tenant that holds its own role locked', () => {
  it('(ALTER ROLE itself in a transaction left open) is still suspended, rotated and deleted: its sessions are ended first', async () => {
    const e = await env('selflock');
    await createViaFile(e, [{ slug: 'sl-s', model: 'schema', shard: 'us1' }]);
    const role = 'tenant_sl_s';
    const canLogin = async () => (await e.q('us1', 'postgres', 'select rolcanlogin as ok from pg_roles where rolname = $1', [role]))[0].ok;
    /** The tenant's own session: its pg_authid row locked by an ALTER ROLE of itself, never committed. */
    const hold = async (password: string) => {
      const c = await beginLeftOpen(await connect(await appUrl(e, 'sl-s', password)));
      await c.query(`alter role current_user password '${password.replace(/'/g, "''")}'`);
      return c;
    };
    let password = (await ok(e, ['tenant', 'credentials', 'sl-s'])).password as string;

    let held = await hold(password);
    // It failed after lock_timeout, the tenant still in.
    const suspended = await e.cli(['tenant', 'suspend', 'sl-s']);
    expect(suspended.code, suspended.stdout + suspended.stderr).toBe(0);
    expect(await canLogin()).toBe(false);
    await expect(held.query('select 1')).rejects.toThrow();
    // LOGIN back by hand while the catalog says suspended (what an interrupted delete leaves): audit names it, --fix takes it away.
    await e.q('us1', 'postgres', `alter role ${role} login`);
    const found = json(await e.cli(['audit', '--shard', 'us1', '--json'])).findings.filter(
      (f: { check: string }) => f.check === 'role.login-while-suspended',
    );
    expect(found).toMatchObject([{ tenant: 'sl-s', object: `role ${role}`, fixable: true }]);
    await e.cli(['audit', '--shard', 'us1', '--fix', '--yes']);
    expect(await canLogin()).toBe(false);
    await ok(e, ['tenant', 'resume', 'sl-s']);

    held = await hold(password);
    const rotated = await ok(e, ['tenant', 'credentials', 'sl-s', '--rotate']);
    expect(rotated.sessionsEnded).toBeGreaterThanOrEqual(1);
    await expect(held.query('select 1')).rejects.toThrow();
    // The new password is the one that works; the one the tenant was setting is not.
    await expect(connect(await appUrl(e, 'sl-s', password))).rejects.toThrow(/password authentication failed/);
    password = rotated.password;
    const app = await connect(await appUrl(e, 'sl-s', password));
    await app.end();

    held = await hold(password);
    await deletesAnyway(e, 'sl-s');
    expect(await e.q('us1', 'postgres', 'select 1 from pg_roles where rolname = $1', [role])).toHaveLength(0);
    await held.end().catch(() => undefined);
  });

  it("reconnecting in a loop to hold its own role, or a neighbour's database or role, locked: still suspended, and the neighbours still deleted", async () => {
    const e = await env('relock');
    await createViaFile(e, [
      { slug: 'rk-s', model: 'schema', shard: 'us1' },
      { slug: 'rk-d', model: 'database', shard: 'us1' },
      { slug: 'rk-x', model: 'schema', shard: 'us1' },
    ]);
    const password = (await ok(e, ['tenant', 'credentials', 'rk-s'])).password as string;
    const url = await appUrl(e, 'rk-s', password);
    /**
     * `check` run while 6 sessions of the tenant each take `sql`'s lock in a transaction left open,
     * reconnecting the moment they are ended; they stop when it is done.
     */
    const underAttack = async (sql: string, check: () => Promise<void>) => {
      let stop = false;
      const attackers = Array.from({ length: 6 }, async () => {
        while (!stop) {
          try {
            const c = await beginLeftOpen(await connect(url));
            await c.query('set local lock_timeout = 0');
            await c.query(sql);
            while (
              !stop &&
              (await c.query('select 1').then(
                () => true,
                () => false,
              ))
            )
              await new Promise((r) => setTimeout(r, 50));
            await c.end().catch(() => undefined);
          } catch {
            await new Promise((r) => setTimeout(r, 10));
          }
        }
      });
      try {
        await check();
      } finally {
        stop = true;
        await Promise.all(attackers);
      }
    };
    // A neighbour's database first: its drop used to lose to sessions taking the lock again.
    await underAttack(`alter role current_user in database t_rk_d set work_mem = '2MB'`, async () => {
      await deletesAnyway(e, 'rk-d');
      expect(await e.q('us1', 'postgres', `select 1 from pg_database where datname = 't_rk_d'`)).toHaveLength(0);
    });
    // A neighbour's role (ALTER DEFAULT PRIVILEGES … TO it locks it): its DROP ROLE goes through.
    await underAttack('alter default privileges for role current_user grant select on tables to tenant_rk_x', async () => {
      await deletesAnyway(e, 'rk-x');
      expect(await e.q('us1', 'postgres', `select 1 from pg_roles where rolname = 'tenant_rk_x'`)).toHaveLength(0);
    });
    // Its own role: LOGIN off in spite of them, every session ended.
    await underAttack(`alter role current_user password '${password}'`, async () => {
      const r = await e.cli(['tenant', 'suspend', 'rk-s']);
      expect(r.code, r.stdout + r.stderr).toBe(0);
      const role = await e.q('us1', 'postgres', `select rolcanlogin as ok from pg_roles where rolname = 'tenant_rk_s'`);
      expect(role[0].ok).toBe(false);
    });
    await expect(connect(url)).rejects.toThrow();
  });

  it("a neighbour's lock on a database tenant's database (ALTER ROLE itself IN DATABASE, never committed) no longer blocks its delete", async () => {
    const e = await env('dblock');
    await createViaFile(e, [
      { slug: 'dl-s', model: 'schema', shard: 'us1' },
      { slug: 'dl-d', model: 'database', shard: 'us1' },
    ]);
    const password = (await ok(e, ['tenant', 'credentials', 'dl-s'])).password as string;
    const neighbour = await beginLeftOpen(await connect(await appUrl(e, 'dl-s', password)));
    // Any role may do this for itself, on a database it cannot even connect to.
    await neighbour.query(`alter role current_user in database t_dl_d set work_mem = '2MB'`);
    await deletesAnyway(e, 'dl-d');
    expect(await e.q('us1', 'postgres', `select 1 from pg_database where datname = 't_dl_d'`)).toHaveLength(0);
    // The neighbour's session was ended (its setting never committed).
    await expect(neighbour.query('select 1')).rejects.toThrow();
  });

  it("a neighbour's lock on a tenant's role (ALTER DEFAULT PRIVILEGES … TO it, never committed) no longer blocks its delete", async () => {
    const e = await env('rolelock');
    await createViaFile(e, [
      { slug: 'rl-a', model: 'schema', shard: 'us1' },
      { slug: 'rl-b', model: 'schema', shard: 'us1' },
    ]);
    const password = (await ok(e, ['tenant', 'credentials', 'rl-a'])).password as string;
    const neighbour = await beginLeftOpen(await connect(await appUrl(e, 'rl-a', password)));
    // Any role may, for itself: it locks the grantee role until the transaction ends.
    await neighbour.query('alter default privileges for role current_user grant select on tables to tenant_rl_b');
    await deletesAnyway(e, 'rl-b');
    expect(await e.q('us1', 'postgres', `select 1 from pg_roles where rolname = 'tenant_rl_b'`)).toHaveLength(0);
    // The neighbour's session was ended (its default privileges never committed).
    await expect(neighbour.query('select 1')).rejects.toThrow();
  });

  it("a neighbour's GRANT on its own large object, left uncommitted, no longer blocks the grantee's delete", async () => {
    const e = await env('lolock');
    await createViaFile(e, [
      { slug: 'lo-a', model: 'schema', shard: 'us1' },
      { slug: 'lo-b', model: 'schema', shard: 'us1' },
    ]);
    const password = (await ok(e, ['tenant', 'credentials', 'lo-a'])).password as string;
    // As on a cluster that lets tenants make large objects (dev clusters do not: closed-functions.ts).
    await withPg(superuserUrl(databaseUrl(e.config.shards.find((x) => x.name === 'us1')!.url, `schemas_${e.name}`)), (c) =>
      c.query('grant execute on function lo_from_bytea(oid, bytea) to tenant_lo_a'),
    );
    const grantor = await connect(await appUrl(e, 'lo-a', password));
    const lo = (await grantor.query<{ lo: number }>(`select lo_from_bytea(0, 'x') as lo`)).rows[0].lo;
    // Taken back at once: the role's delete would name a grant the superuser made to it.
    await withPg(superuserUrl(databaseUrl(e.config.shards.find((x) => x.name === 'us1')!.url, `schemas_${e.name}`)), (c) =>
      c.query('revoke execute on function lo_from_bytea(oid, bytea) from tenant_lo_a'),
    );
    await grantor.query(`grant select on large object ${lo} to tenant_lo_b`);
    await beginLeftOpen(grantor);
    await grantor.query(`grant update on large object ${lo} to tenant_lo_b`);
    await deletesAnyway(e, 'lo-b');
    expect(await e.q('us1', 'postgres', `select 1 from pg_roles where rolname = 'tenant_lo_b'`)).toHaveLength(0);
    await expect(grantor.query('select 1')).rejects.toThrow();
  });
});
