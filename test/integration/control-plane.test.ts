import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { openCatalog } from '../../src/catalog/open.js';
import { databaseUrl } from '../../src/fleet/connection-url.js';
import { DATABASE_ACL_LOCK_CLASSID, MIGRATION_LOCK_CLASSID, POOL_SUSPEND_LOCK_CLASSID } from '../../src/operations/lock-ids.js';
import { createViaFile } from '../helpers/create-file.js';
import { json, ownMigrateFleet, withPg, type MigrateEnv } from '../helpers/migrate-env.js';
import { superuserUrl } from '../helpers/test-fleet.js';
import { FENCE_LOCK_CLASSID, poolFenceHolders } from '../../src/placement/pool/fence.js';
import { ADVISORY_LOCKS, LARGE_OBJECTS } from '../../src/placement/closed-functions.js';
import { errorMessage } from '../../src/errors.js';

/**
 * The control plane out of tenants' reach (issue 17), tried as an attacker would: a tenant role
 * that logs in for real (its password set through the shard role: tenant roles have none), and
 * the serving role. tenantctl runs as the least-privileged shard role throughout.
 */
const { env } = ownMigrateFleet();
const REPO_MIGRATIONS = fileURLToPath(new URL('../../migrations', import.meta.url));

const PASSWORD = 'tenant-Pw-17';

function shardUrl(e: MigrateEnv, database: string): string {
  return databaseUrl(e.config.shards.find((s) => s.name === 'us1')!.url, database);
}

/** A URL for a database of us1 as another role. */
function urlAs(e: MigrateEnv, database: string, user: string, password: string): string {
  const u = new URL(shardUrl(e, database));
  u.username = encodeURIComponent(user);
  u.password = encodeURIComponent(password);
  return u.toString();
}

/** Let the tenant's role log in with a password (as an operator mapping it to an application would). */
async function loginAs(e: MigrateEnv, slug: string): Promise<string> {
  const role = `tenant_${slug.replace(/-/g, '_')}`;
  await e.q('us1', 'postgres', `alter role ${role} password '${PASSWORD}'`);
  return role;
}

/** A session of `user` on `database` that stays open until `close`. */
async function session(url: string): Promise<pg.Client & { close(): Promise<void> }> {
  const c = new pg.Client({ connectionString: url });
  // A suspend ends the tenant role's sessions (this one among them): an error event, not a crash.
  c.on('error', () => undefined);
  await c.connect();
  return Object.assign(c, { close: () => c.end().catch(() => undefined) });
}

async function connectError(url: string): Promise<string> {
  return withPg(url, async () => 'connected').catch((err: Error) => err.message);
}

/** An env with two pool tenants on us1 (`<name>-a`, `<name>-b`) and the serving role's URL to their pool: what any pool tenant connects with. */
async function twoPoolTenants(name: string) {
  const e = await env(name);
  await createViaFile(e, [
    { slug: `${name}-a`, model: 'pool', shard: 'us1' },
    { slug: `${name}-b`, model: 'pool', shard: 'us1' },
  ]);
  const serving = e.config.servingRole;
  return { e, serving, url: urlAs(e, `pool_${e.name}`, serving.name, serving.password ?? '') };
}

function asSuperuser<T>(e: MigrateEnv, database: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  return withPg(superuserUrl(shardUrl(e, database)), fn);
}

/**
 * As on a cluster whose operator let `role` take advisory locks (an application that uses them;
 * doctor names the risk): dev clusters take them from PUBLIC (src/placement/closed-functions.ts), so
 * the tests of how tenantctl names such a holder grant them first.
 */
async function advisoryLocksFor(e: MigrateEnv, database: string, role: string): Promise<void> {
  await asSuperuser(e, database, (c) => c.query(`grant execute on function ${ADVISORY_LOCKS.functions.join(', ')} to ${role}`));
}

/**
 * `role` makes its large objects in `database` as on a cluster that lets tenants (dev clusters do
 * not: closed-functions.ts); the grant is taken back after, or the role's delete would name it.
 */
async function largeObjectsAs<T>(e: MigrateEnv, database: string, role: string, fn: () => Promise<T>): Promise<T> {
  const fns = LARGE_OBJECTS.functions.join(', ');
  await asSuperuser(e, database, (c) => c.query(`grant execute on function ${fns} to ${role}`));
  try {
    return await fn();
  } finally {
    await asSuperuser(e, database, (c) => c.query(`revoke execute on function ${fns} from ${role}`));
  }
}

async function ok(e: MigrateEnv, args: string[]) {
  const r = await e.cli([...args, '--json']);
  expect(r.code, `${args.join(' ')}: ${r.stdout}${r.stderr}`).toBe(0);
  return json(r);
}

describe('the catalog and maintenance databases are closed to tenants', () => {
  it('a tenant role cannot connect to the catalog, postgres or template1; its own database it can', async () => {
    const e = await env('cpc');
    await ok(e, ['tenant', 'create', 'cpc-a', '--model', 'schema', '--shard', 'us1']);
    const role = await loginAs(e, 'cpc-a');
    expect(await connectError(urlAs(e, `schemas_${e.name}`, role, PASSWORD))).toBe('connected');
    // Its copy of the shared reference data (tenantKey.shared, read only) it reads and cannot
    // change: backups and moves do not copy it, so a change would be lost by the next one.
    await withPg(urlAs(e, `schemas_${e.name}`, role, PASSWORD), async (c) => {
      expect((await c.query('select count(*)::int as n from task_statuses')).rows[0].n).toBeGreaterThan(0);
      for (const write of [
        `insert into task_statuses (code, label, sort_order, is_closed) values ('review', 'In review', 25, false)`,
        `update task_statuses set label = 'EVIL'`,
        'delete from task_statuses',
        'truncate task_statuses cascade',
      ])
        await expect(c.query(write), write).rejects.toThrow(/permission denied for table task_statuses/);
    });
    for (const database of [`cat_${e.name}`, 'postgres', 'template1']) {
      expect(await connectError(urlAs(e, database, role, PASSWORD)), database).toMatch(/permission denied for database/);
    }
    // Nor the serving role (pool tenants' door).
    await ok(e, ['tenant', 'create', 'cpc-p', '--model', 'pool', '--shard', 'us1']);
    const serving = e.config.servingRole;
    expect(await connectError(urlAs(e, `cat_${e.name}`, serving.name, serving.password ?? ''))).toMatch(/permission denied for database/);
    // tenantctl's role still connects to both (postgres is its url's database: granted by name).
    expect(await e.q('us1', 'postgres', 'select 1 as x')).toEqual([{ x: 1 }]);
    expect(await e.q('us1', `cat_${e.name}`, 'select 1 as x')).toEqual([{ x: 1 }]);
  });

  it('a database tenantctl makes is never open to PUBLIC; one a killed create left unconnectable is finished by the next create', async () => {
    const e = await env('cpo');
    // What a create killed between CREATE DATABASE and opening it leaves (connections off).
    await e.q('us1', 'postgres', `create database schemas_${e.name} with allow_connections = false`);
    await createViaFile(e, [
      { slug: 'cpo-s', model: 'schema', shard: 'us1' },
      { slug: 'cpo-d', model: 'database', shard: 'us1' },
    ]);
    const databases = (await e.db.selectFrom('tenants').select('database_name').execute()).map((t) => t.database_name);
    expect(databases).toContain(`schemas_${e.name}`);
    const rows = await e.q(
      'us1',
      'postgres',
      `select datname, datallowconn, has_database_privilege('public', datname, 'CONNECT') as public_connect
         from pg_database where datname = any($1::text[]) order by 1`,
      [databases],
    );
    expect(rows).toHaveLength(2);
    for (const r of rows) expect(r, r.datname).toMatchObject({ datallowconn: true, public_connect: false });
  });

  it('a read-only shared table a later migration makes is read only to the schema and database tenants it reaches', async () => {
    const e = await env('cpm', { files: ['0001_workspaces_and_users.sql'] });
    await createViaFile(e, [
      { slug: 'cpm-s', model: 'schema', shard: 'us1' },
      { slug: 'cpm-d', model: 'database', shard: 'us1' },
    ]);
    await e.addMigration('0002_projects_and_tasks.sql', await readFile(join(REPO_MIGRATIONS, '0002_projects_and_tasks.sql'), 'utf8'));
    await ok(e, ['migrate', 'up']);
    for (const slug of ['cpm-s', 'cpm-d']) {
      const { database_name: database } = await e.db
        .selectFrom('tenants')
        .select('database_name')
        .where('slug', '=', slug)
        .executeTakeFirstOrThrow();
      const role = await loginAs(e, slug);
      await withPg(urlAs(e, database, role, PASSWORD), async (c) => {
        expect((await c.query('select count(*)::int as n from task_statuses')).rows[0].n, slug).toBeGreaterThan(0);
        await expect(c.query(`update task_statuses set label = 'EVIL'`), slug).rejects.toThrow(/permission denied for table task_statuses/);
        // Its own tables it still writes.
        await c.query(`insert into workspaces (id, name) values (gen_random_uuid(), 'w')`);
      });
    }
    // A copy left writable (a tenant made before tenantctl took the writes back, or a grant by
    // hand) is what audit finds, and --fix takes the writes back.
    const placed = Object.fromEntries(
      (
        await e.db.selectFrom('tenants').select(['slug', 'database_name', 'schema_name']).where('slug', 'in', ['cpm-s', 'cpm-d']).execute()
      ).map((t) => [t.slug, t]),
    );
    const statuses = (slug: string) => `${placed[slug].schema_name}.task_statuses`;
    await e.q('us1', placed['cpm-s'].database_name, `grant insert, update on ${statuses('cpm-s')} to tenant_cpm_s`);
    await e.q('us1', placed['cpm-d'].database_name, `grant delete on ${statuses('cpm-d')} to tenant_cpm_d, public`);
    const found = json(await e.cli(['audit', '--json'])).findings.filter((f: { check: string }) => f.check === 'placement.shared-writable');
    expect(found.map((f: { tenant: string; object: string }) => [f.tenant, f.object]).sort()).toEqual([
      ['cpm-d', statuses('cpm-d')],
      ['cpm-s', statuses('cpm-s')],
    ]);
    expect(found.find((f: { tenant: string }) => f.tenant === 'cpm-d')).toMatchObject({
      severity: 'high',
      fixable: true,
      message: expect.stringMatching(/PUBLIC, tenant_cpm_d may write it/),
    });
    const fixed = await e.cli(['audit', '--fix', '--yes', '--json']);
    expect(fixed.stdout).toContain('placement.shared-writable');
    for (const slug of ['cpm-s', 'cpm-d'])
      await withPg(urlAs(e, placed[slug].database_name, `tenant_${slug.replace('-', '_')}`, PASSWORD), async (c) => {
        await expect(c.query('delete from task_statuses'), slug).rejects.toThrow(/permission denied for table task_statuses/);
        await expect(c.query(`update task_statuses set label = 'EVIL'`), slug).rejects.toThrow(/permission denied for table task_statuses/);
      });
    expect(
      json(await e.cli(['audit', '--json'])).findings.filter((f: { check: string }) => f.check === 'placement.shared-writable'),
    ).toEqual([]);
  });

  it('an existing catalog open to PUBLIC is closed when opened; doctor names what is still open and the fix', async () => {
    const e = await env('cpo');
    const cat = `cat_${e.name}`;
    const publicCan = async () =>
      (await e.q('us1', cat, `select has_database_privilege('public', current_database(), 'CONNECT') as c`))[0].c as boolean;
    // As catalogs were made before: CONNECT and TEMP for PUBLIC.
    await e.q('us1', 'postgres', `grant connect, temporary on database ${cat} to public`);
    expect(await publicCan()).toBe(true);
    const db = await openCatalog(e.config);
    await db.destroy();
    expect(await publicCan()).toBe(false);

    const clean = json(await e.cli(['doctor', '--json']));
    expect(clean.checks.find((c: any) => c.check === 'catalog access')).toMatchObject({ ok: true });
    expect(clean.checks.find((c: any) => c.check === 'maintenance databases on us1')).toMatchObject({ ok: true });

    // Open to PUBLIC where tenantctl's role cannot fix it: a maintenance database (owned by the
    // superuser), and a catalog database someone else owns.
    await asSuperuser(e, 'postgres', (c) => c.query('grant connect on database template1 to public'));
    try {
      const other = `cpo_other_${process.pid}`;
      await asSuperuser(e, 'postgres', (c) => c.query(`create database ${other}`));
      try {
        const doc = json(await e.cli(['doctor', '--json']));
        const maint = doc.checks.find((c: any) => c.check === 'maintenance databases on us1');
        expect(maint.ok).toBe(false);
        expect(maint.detail).toMatch(/PUBLIC can connect to template1/);
        expect(maint.detail).toContain('revoke connect, temporary on database "template1" from public');
        expect(doc.ok).toBe(false);

        const { writeFile, readFile } = await import('node:fs/promises');
        const text = await readFile(e.configFile, 'utf8');
        const otherFile = e.configFile.replace(/\.yaml$/, '.other.yaml');
        await writeFile(otherFile, text.replace(`database: ${cat}`, `database: ${other}`));
        const { cli } = await import('../helpers/cli.js');
        const odoc = json(await cli(['doctor', '--json'], { config: otherFile }));
        const access = odoc.checks.find((c: any) => c.check === 'catalog access');
        expect(access).toMatchObject({ ok: false });
        expect(access.detail).toMatch(new RegExp(`PUBLIC can connect to the catalog database ${other}.*as postgres \\(its owner\\)`));
        expect(access.detail).toContain(`revoke connect, temporary on database "${other}" from public`);
      } finally {
        await asSuperuser(e, 'postgres', (c) => c.query(`drop database if exists ${other} with (force)`));
      }
    } finally {
      await asSuperuser(e, 'postgres', (c) => c.query('revoke connect on database template1 from public'));
    }
  });
});

describe("tenantctl's locks where tenants connect", () => {
  it('a tenant may not take advisory locks (one session filled the lock table and refused every connection to the shard) nor make large objects; pool writes and their fence still work; doctor warns where PUBLIC may', async () => {
    const e = await env('cpa');
    await createViaFile(e, [
      { slug: 'cpa-s', model: 'schema', shard: 'us1' },
      { slug: 'cpa-p', model: 'pool', shard: 'us1' },
    ]);
    const role = await loginAs(e, 'cpa-s');
    const serving = e.config.servingRole;
    const key = (await e.db.selectFrom('tenants').select('key').where('slug', '=', 'cpa-p').executeTakeFirstOrThrow()).key;
    const flood = 'select count(pg_try_advisory_lock(1, i)) from generate_series(1, 100000) i';
    for (const url of [urlAs(e, `schemas_${e.name}`, role, PASSWORD), urlAs(e, `pool_${e.name}`, serving.name, serving.password ?? '')]) {
      const s = await session(url);
      try {
        await expect(s.query(flood)).rejects.toThrow(/permission denied for function pg_try_advisory_lock/);
        // Nor make large objects: usage cannot measure them, and they refuse the tenant's backups and moves.
        await expect(s.query(`select lo_from_bytea(0, 'x')`)).rejects.toThrow(/permission denied for function lo_from_bytea/);
        await expect(s.query('select pg_advisory_lock_shared($1, hashtext($2))', [FENCE_LOCK_CLASSID, key])).rejects.toThrow(
          /permission denied for function pg_advisory_lock_shared/,
        );
      } finally {
        await s.close();
      }
    }
    // The pool's writes go through its write policies, whose fence function takes the lock as the shard role.
    const app = await session(
      `${urlAs(e, `pool_${e.name}`, serving.name, serving.password ?? '')}?options=${encodeURIComponent(`-c app.tenant_id=${key}`)}`,
    );
    try {
      await app.query(`insert into app.workspaces (id, name) values ($1, 'w')`, [key]);
      await app.query(`insert into app.projects (tenant_id, name) values ($1, 'p')`, [key]);
      expect((await app.query('select count(*)::int as n from app.projects')).rows[0].n).toBe(1);
    } finally {
      await app.close();
    }
    const checks = (await ok(e, ['doctor'])).checks as { check: string; warning?: boolean; detail: string }[];
    expect(checks.find((c) => c.check === 'advisory locks on us1')).toMatchObject({ warning: false });
    expect(checks.find((c) => c.check === 'large objects on us1')).toMatchObject({ warning: false });
    // Open again (PostgreSQL's default): doctor warns, naming the statements. Not in template1: a
    // session there fails the CREATE DATABASE of the test files running beside this one.
    await asSuperuser(e, 'postgres', (c) => c.query(`grant execute on function ${ADVISORY_LOCKS.functions.join(', ')} to public`));
    try {
      const again = (await ok(e, ['doctor'])).checks as { check: string; warning?: boolean; detail: string }[];
      expect(again.find((c) => c.check === 'advisory locks on us1')).toMatchObject({
        warning: true,
        detail: expect.stringMatching(
          /PUBLIC may run pg_advisory_lock\(bigint\), .*\(read in postgres\): one tenant session .*revoke execute on function pg_catalog.pg_advisory_lock\(bigint\)/,
        ),
      });
    } finally {
      await asSuperuser(e, 'postgres', (c) => c.query(`revoke execute on function ${ADVISORY_LOCKS.functions.join(', ')} from public`));
    }
  });

  it('a tenant holding the migration locks of its neighbour and itself blocks neither migrate up nor its own suspension', async () => {
    // A lock timeout longer than the test's own (120 s): had migrate up waited for the tenant's
    // locks, the test would time out; no clock reading that a loaded machine could break.
    const e = await env('cpl', { migrations: { lockTimeout: '10min' } });
    await createViaFile(e, [
      { slug: 'cpl-a', model: 'schema', shard: 'us1' },
      { slug: 'cpl-b', model: 'schema', shard: 'us1' },
    ]);
    const role = await loginAs(e, 'cpl-a');
    await advisoryLocksFor(e, `schemas_${e.name}`, role);
    const attacker = await session(urlAs(e, `schemas_${e.name}`, role, PASSWORD));
    try {
      for (const schema of ['t_cpl_a', 't_cpl_b']) {
        await attacker.query('select pg_advisory_lock($1::int, hashtext($2))', [MIGRATION_LOCK_CLASSID, schema]);
      }
      // The tracking table's creation key too.
      await attacker.query('select pg_advisory_lock($1::int, 0)', [MIGRATION_LOCK_CLASSID]);
      await e.addMigration('0004_cp_note.sql', 'alter table tasks add column cp_note text;');
      const up = await ok(e, ['migrate', 'up']);
      expect(up.targets).toMatchObject({ failed: 0, migrated: 2 });
      for (const schema of ['t_cpl_a', 't_cpl_b']) {
        const cols = await e.q(
          'us1',
          `schemas_${e.name}`,
          `select 1 from information_schema.columns where table_schema = $1 and column_name = 'cp_note'`,
          [schema],
        );
        expect(cols, schema).toHaveLength(1);
      }
      // Its own suspension: the tenant lock is in the catalog, which the tenant cannot reach; and
      // suspending ends the session that held the locks.
      await ok(e, ['tenant', 'suspend', 'cpl-a']);
      await expect(attacker.query('select 1')).rejects.toThrow();
    } finally {
      await attacker.close();
    }
  });

  it("the serving role holding the pool's migration lock fails migrate up at once, naming its role and pid", async () => {
    // A lock timeout longer than the test's own (120 s): had migrate up waited for the holder, the
    // test would time out; no clock reading that a loaded machine could break.
    const e = await env('cps', { migrations: { lockTimeout: '10min' } });
    await ok(e, ['tenant', 'create', 'cps-p', '--model', 'pool', '--shard', 'us1']);
    const serving = e.config.servingRole;
    await advisoryLocksFor(e, `pool_${e.name}`, serving.name);
    const holder = await session(urlAs(e, `pool_${e.name}`, serving.name, serving.password ?? ''));
    try {
      await holder.query('select pg_advisory_lock($1::int, hashtext($2))', [MIGRATION_LOCK_CLASSID, 'app']);
      const pid = (await holder.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0].pid;
      await e.addMigration('0004_cp_note.sql', 'alter table tasks add column cp_note text;');
      const r = await e.cli(['migrate', 'up', '--json']);
      expect(r.code).not.toBe(0);
      const text = JSON.stringify(json(r));
      expect(text).toContain('LOCKED');
      expect(text).toContain(`locked by role ${serving.name} (pid ${pid}), not by tenantctl`);
    } finally {
      await holder.close();
    }
  });

  it("a pool tenant holding the pool's policy lock fails a neighbour's suspend and delete at once, naming its role and pid", async () => {
    const { e, serving, url } = await twoPoolTenants('cpq');
    // What any pool tenant can run through its URL where advisory locks are open: the lock that serialises the pool's write policies.
    await advisoryLocksFor(e, `pool_${e.name}`, serving.name);
    const holder = await session(url);
    try {
      await holder.query('select pg_advisory_lock($1::int, 0)', [POOL_SUSPEND_LOCK_CLASSID]);
      const pid = (await holder.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0].pid;
      for (const args of [
        ['tenant', 'suspend', 'cpq-b'],
        ['tenant', 'delete', 'cpq-b', '--yes', '--skip-backup'],
      ]) {
        // Had it waited for the holder (as it did), the test would time out.
        const r = await e.cli([...args, '--json']);
        expect(r.code, args.join(' ')).toBe(3);
        expect(json(r).error.message).toContain(`locked by role ${serving.name} (pid ${pid}), not by tenantctl`);
      }
      // Nothing changed: the neighbour is active, with its access.
      expect((await e.db.selectFrom('tenants').select('status').where('slug', '=', 'cpq-b').executeTakeFirstOrThrow()).status).toBe(
        'active',
      );
    } finally {
      await holder.close();
    }
    await ok(e, ['tenant', 'suspend', 'cpq-b']);
  });

  it("a pool tenant's setting on the serving role (every pool tenant's) is found by audit and undone by --fix", async () => {
    const { e, serving, url } = await twoPoolTenants('cpr');
    // What any pool tenant can run through its URL: every pool tenant's next session is read-only.
    const a = await session(url);
    await a.query('alter role current_user set default_transaction_read_only = on');
    await a.close();
    const b = await session(url);
    await expect(b.query('create temp table t (x int)')).rejects.toMatchObject({ code: '25006' });
    await b.close();
    try {
      const r = await e.cli(['audit', '--json']);
      const found = json(r).findings.filter((f: { check: string }) => f.check === 'role.serving-settings');
      expect(found).toHaveLength(1);
      expect(found[0]).toMatchObject({
        severity: 'high',
        fixable: true,
        message: expect.stringMatching(/default_transaction_read_only=on/),
      });
      const fixed = await e.cli(['audit', '--fix', '--yes', '--json']);
      expect(fixed.stdout).toContain('role.serving-settings');
      const c = await session(url);
      expect((await c.query<{ ro: string }>(`select current_setting('default_transaction_read_only') as ro`)).rows[0].ro).toBe('off');
      await c.close();
    } finally {
      await asSuperuser(e, `pool_${e.name}`, (su) => su.query(`alter role ${serving.name} reset all`)).catch(() => undefined);
    }
  });

  it('a tenant keeping data in its role settings (outside every table and quota) is found by audit and reset by --fix; limits read only their own settings', async () => {
    const e = await env('cpbig');
    await e.create([{ slug: 'cpbig-s', model: 'schema', shard: 'us1' }]);
    const role = await loginAs(e, 'cpbig-s');
    const database = `schemas_${e.name}`;
    // Any role may do this to itself, in every database; hundreds of MB made audit and limits apply
    // fail outright (a string longer than node can hold). 300 kB shows the finding.
    await withPg(urlAs(e, database, role, PASSWORD), async (c) => {
      await c.query(`do $$ begin execute format('alter role current_user set application_name = %L', repeat('y', 300000)); end $$`);
      await c.query(
        `do $$ begin execute format('alter role current_user in database %I set application_name = %L', current_database(), repeat('z', 200000)); end $$`,
      );
    });
    const found = json(await e.cli(['audit', '--json'])).findings.filter((f: { check: string }) => f.check === 'role.oversized-settings');
    expect(found.map((f: { object: string; tenant: string }) => [f.object, f.tenant])).toEqual([
      [`role ${role}`, 'cpbig-s'],
      [`role ${role} in database ${database}`, 'cpbig-s'],
    ]);
    expect(found[0].message).toContain('keeps 300,017 bytes in its setting application_name');
    // usage counts them against the tenant's storage (a 1 GB quota held 50 MB there unseen).
    const bytes = async () => json(await e.cli(['usage', '--tenant', 'cpbig-s', '--json'])).tenants[0].bytes as number;
    expect(await bytes()).toBeGreaterThan(500_034);
    // Only the settings tenantctl manages are read for the limits; the tier's are in place.
    const limits = await e.cli(['tenant', 'limits', 'apply', '--dry-run', '--json']);
    expect(limits.code, limits.stdout + limits.stderr).toBe(0);
    expect(limits.stdout).not.toContain('yyyy');
    const fixed = await e.cli(['audit', '--fix', '--yes', '--json']);
    expect(fixed.code, fixed.stdout + fixed.stderr).toBe(0);
    expect(json(await e.cli(['audit', '--json'])).findings.filter((f: { check: string }) => f.check === 'role.oversized-settings')).toEqual(
      [],
    );
    expect(await bytes()).toBeLessThan(500_034);
    expect(
      await e.q(
        'us1',
        'postgres',
        `select count(*)::int as n from pg_db_role_setting s join pg_roles r on r.oid = s.setrole, unnest(s.setconfig) cfg
        where r.rolname = $1 and cfg like 'application\\_name=%'`,
        [role],
      ),
    ).toEqual([{ n: 0 }]);
  });

  it("a pool tenant's new password on the serving role (every pool tenant's) fails doctor, is found by audit and set back by --fix", async () => {
    const { e, serving, url } = await twoPoolTenants('cpw');
    const a = await session(url);
    await a.query(`alter role current_user password 'pwned-by-a'`);
    await a.close();
    try {
      // The neighbour's application is locked out.
      expect(await connectError(url)).toMatch(/password authentication failed/);
      const doctor = await e.cli(['doctor', '--json']);
      expect(doctor.code).toBe(1);
      expect(json(doctor).checks.find((c: { check: string }) => c.check === `role ${serving.name} on us1`)).toMatchObject({
        ok: false,
        detail: expect.stringMatching(/refuses servingRole\.password: every pool tenant's application on us1 is locked out/),
      });
      const r = await e.cli(['audit', '--json']);
      expect(r.code).toBe(1);
      const found = json(r).findings.filter((f: { check: string }) => f.check === 'role.serving-password');
      expect(found).toEqual([
        expect.objectContaining({ severity: 'critical', fixable: true, fix: expect.stringContaining("password '***'") }),
      ]);
      // No secret in what audit prints.
      expect(r.stdout + r.stderr).not.toContain(serving.password ?? '-');
      const fixed = await e.cli(['audit', '--fix', '--yes', '--json']);
      expect(fixed.stdout).toContain('role.serving-password');
      expect(fixed.stdout + fixed.stderr).not.toContain(serving.password ?? '-');
      expect(await connectError(url)).toBe('connected');
      expect(json(fixed).findings.filter((f: { check: string }) => f.check === 'role.serving-password')).toEqual([]);
      expect((await e.cli(['doctor'])).code).toBe(0);
    } finally {
      await asSuperuser(e, 'postgres', (su) => su.query(`alter role ${serving.name} password '${serving.password}'`)).catch(
        () => undefined,
      );
    }
  });

  it("the pool tenants together cannot take a shard's every connection: the serving role's limit holds them, tenantctl still suspends one; a changed limit is found and set back", async () => {
    // A serving role of this test's own, with a small limit (roles are cluster-wide).
    const e = await env('ccl', { servingRole: { name: 'app_ccl', connectionLimit: 3 } });
    await createViaFile(e, [
      { slug: 'ccl-a', model: 'pool', shard: 'us1' },
      { slug: 'ccl-b', model: 'pool', shard: 'us1' },
    ]);
    const url = urlAs(e, `pool_${e.name}`, 'app_ccl', e.config.servingRole.password ?? '');
    const held = [await session(url), await session(url), await session(url)];
    try {
      // ccl-a's application opens what the role allows; the next login is refused by PostgreSQL.
      expect(await connectError(url)).toMatch(/too many connections for role "app_ccl"/);
      // A tenant cannot lift the limit through its own session.
      await expect(held[0].query('alter role current_user connection limit -1')).rejects.toThrow(/permission denied/);
      // tenantctl's own connections are not the serving role's: it still works on the shard.
      await ok(e, ['tenant', 'suspend', 'ccl-b']);
      await ok(e, ['tenant', 'resume', 'ccl-b']);
    } finally {
      await Promise.all(held.map((c) => c.close()));
    }
    // An operator (or an older tenantctl) left the role without its limit: audit finds it, --fix sets it.
    await e.q('us1', 'postgres', 'alter role app_ccl connection limit -1');
    const r = await e.cli(['audit', '--json']);
    expect(r.code).toBe(1);
    expect(json(r).findings.filter((f: { check: string }) => f.check === 'role.serving-connection-limit')).toEqual([
      expect.objectContaining({
        severity: 'high',
        fixable: true,
        object: 'role app_ccl',
        fix: 'alter role "app_ccl" connection limit 3;',
        message: expect.stringMatching(/has no connection limit on us1, where servingRole\.connectionLimit is 3/),
      }),
    ]);
    const fixed = await e.cli(['audit', '--fix', '--yes', '--json']);
    expect(json(fixed).findings.filter((f: { check: string }) => f.check === 'role.serving-connection-limit')).toEqual([]);
    expect((await e.q('us1', 'postgres', `select rolconnlimit from pg_roles where rolname = 'app_ccl'`))[0].rolconnlimit).toBe(3);
    // And a migration of the pool sets it too (the config is the truth).
    await e.q('us1', 'postgres', 'alter role app_ccl connection limit 1');
    await ok(e, ['migrate', 'up']);
    expect((await e.q('us1', 'postgres', `select rolconnlimit from pg_roles where rolname = 'app_ccl'`))[0].rolconnlimit).toBe(3);
  });

  it('a statement that waits out its lock timeout names the sessions that held the lock (a tenant holding a pool table; PostgreSQL says neither whose nor what)', async () => {
    const { e, serving, url } = await twoPoolTenants('cpz');
    const holder = await session(`${url}?application_name=cpz-a`);
    try {
      await holder.query('begin');
      await holder.query('lock table app.workspaces in access exclusive mode');
      const pid = (await holder.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0].pid;
      // Held a second before the wait ends (the holders named are those of transactions that old).
      await new Promise((r) => setTimeout(r, 1100));
      const err = await e.fleet
        .withClient('us1', `pool_${e.name}`, async (c) => {
          await c.query(`set lock_timeout = '1s'`);
          try {
            return await c.query('select count(*) from app.workspaces');
          } finally {
            await c.query('reset lock_timeout');
          }
        })
        .then(
          () => null,
          (x: Error) => x,
        );
      expect(err?.message).toMatch(
        new RegExp(
          `lock timeout \\(held past the wait, likely by: pid ${pid} ${serving.name} holds AccessExclusiveLock on app\\.workspaces \\(application cpz-a\\b`,
        ),
      );
      expect(errorMessage(err)).toMatch(/likely by: .*; run the command again once it has ended$/);
    } finally {
      await holder.close();
    }
  });

  it("a neighbour holding a pool tenant's write lock is what a move's fence names when it gives up (pid, role, the application it says it is)", async () => {
    const { e, serving, url } = await twoPoolTenants('cpf');
    const key = (await e.db.selectFrom('tenants').select('key').where('slug', '=', 'cpf-b').executeTakeFirstOrThrow()).key;
    // cpf-a's session, as its URL would name it, holds cpf-b's write lock (what a write of cpf-b takes, shared).
    await advisoryLocksFor(e, `pool_${e.name}`, serving.name);
    const holder = await session(`${url}?application_name=cpf-a`);
    try {
      await holder.query('select pg_advisory_lock_shared($1, hashtext($2))', [FENCE_LOCK_CLASSID, key]);
      const pid = (await holder.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0].pid;
      const said = await withPg(shardUrl(e, `pool_${e.name}`), (c) => poolFenceHolders(c, key));
      expect(said).toBe(` (held by pid ${pid} ${serving.name}, application cpf-a)`);
    } finally {
      await holder.close();
    }
    expect(await withPg(shardUrl(e, `pool_${e.name}`), (c) => poolFenceHolders(c, key))).toBe('');
  });

  it("a tenant holding the shared database's grant lock fails tenant create at once, naming its role and pid", async () => {
    const e = await env('cpg');
    await ok(e, ['tenant', 'create', 'cpg-a', '--model', 'schema', '--shard', 'us1']);
    const role = await loginAs(e, 'cpg-a');
    await advisoryLocksFor(e, `schemas_${e.name}`, role);
    const holder = await session(urlAs(e, `schemas_${e.name}`, role, PASSWORD));
    try {
      await holder.query('select pg_advisory_lock($1::int, hashtext($2))', [DATABASE_ACL_LOCK_CLASSID, `schemas_${e.name}`]);
      const pid = (await holder.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0].pid;
      const t0 = Date.now();
      const r = await e.cli(['tenant', 'create', 'cpg-b', '--model', 'schema', '--shard', 'us1', '--json']);
      // Not the 30 s a tenantctl holder of the grant lock is waited for (src/operations/lock-holder.ts);
      // 5 s was too tight for one CLI run on a loaded 2-core machine.
      expect(Date.now() - t0).toBeLessThan(25_000);
      expect(r.code).not.toBe(0);
      expect(r.stdout + r.stderr).toContain(`locked by role ${role} (pid ${pid}), not by tenantctl`);
    } finally {
      await holder.close();
    }
    // Once the session is gone, the same command finishes.
    await ok(e, ['tenant', 'create', 'cpg-b', '--model', 'schema', '--shard', 'us1']);
  });
});

describe('deletes always finish', () => {
  it('a tenant role owning large objects in the catalog and postgres (from before they were closed) is deleted', async () => {
    const e = await env('cpd');
    const cat = `cat_${e.name}`;
    await createViaFile(e, [
      { slug: 'cpd-a', model: 'schema', shard: 'us1' },
      { slug: 'cpd-b', model: 'database', shard: 'us1' },
    ]);
    // Open as an older fleet left them, while the tenants plant their objects.
    await e.q('us1', 'postgres', `grant connect on database ${cat} to public`);
    await asSuperuser(e, 'postgres', (c) => c.query('grant connect on database postgres to public'));
    try {
      for (const slug of ['cpd-a', 'cpd-b']) {
        const role = await loginAs(e, slug);
        for (const database of [cat, 'postgres']) {
          await largeObjectsAs(e, database, role, () =>
            withPg(urlAs(e, database, role, PASSWORD), (c) => c.query(`select lo_from_bytea(0, 'x')`)),
          );
        }
      }
    } finally {
      await e.q('us1', 'postgres', `revoke connect on database ${cat} from public`);
      await asSuperuser(e, 'postgres', (c) => c.query('revoke connect on database postgres from public'));
    }
    const los = async () =>
      (
        await asSuperuser(e, cat, (c) =>
          c.query(`select count(*)::int as n from pg_largeobject_metadata where lomowner::regrole::text like 'tenant_cpd_%'`),
        )
      ).rows[0].n;
    expect(await los()).toBe(2);
    for (const slug of ['cpd-a', 'cpd-b']) await ok(e, ['tenant', 'delete', slug, '--yes']);
    expect(await e.q('us1', 'postgres', `select rolname from pg_roles where rolname like 'tenant_cpd_%'`)).toEqual([]);
    expect(await los()).toBe(0);
    expect(await e.db.selectFrom('tenants').select('slug').where('slug', 'like', 'cpd-%').execute()).toEqual([]);
  });

  it("a neighbour's grant on its own large object to a tenant's role (schema tenant, and the serving role) does not keep that tenant from being deleted or moved", async () => {
    const e = await env('cpg2');
    await createViaFile(e, [
      { slug: 'cpg2-evil', model: 'schema', shard: 'us1' },
      { slug: 'cpg2-p', model: 'pool', shard: 'us1' },
      { slug: 'cpg2-vs', model: 'schema', shard: 'us1' },
      { slug: 'cpg2-vd', model: 'database', shard: 'us1' },
      { slug: 'cpg2-vm', model: 'schema', shard: 'us1' },
    ]);
    const evil = await loginAs(e, 'cpg2-evil');
    const serving = e.config.servingRole;
    // Roles are cluster-wide: the grants name every model's victim, from the schemas database and the pool's.
    await largeObjectsAs(e, `schemas_${e.name}`, evil, () =>
      withPg(urlAs(e, `schemas_${e.name}`, evil, PASSWORD), async (c) => {
        const lo = (await c.query<{ lo: number }>(`select lo_from_bytea(0, 'x') as lo`)).rows[0].lo;
        for (const victim of ['tenant_cpg2_vs', 'tenant_cpg2_vd', 'tenant_cpg2_vm'])
          await c.query(`grant select on large object ${lo} to ${victim}`);
      }),
    );
    await largeObjectsAs(e, `pool_${e.name}`, serving.name, () =>
      withPg(urlAs(e, `pool_${e.name}`, serving.name, serving.password ?? ''), async (c) => {
        const lo = (await c.query<{ lo: number }>(`select lo_from_bytea(0, 'y') as lo`)).rows[0].lo;
        await c.query(`grant update on large object ${lo} to tenant_cpg2_vd`);
      }),
    );
    // audit names the door the attacker opened in the schemas database (its object, readable by neighbours).
    const doors = json(await e.cli(['audit', '--json'])).findings.filter(
      (f: { check: string }) => f.check === 'schema.large-object-shared',
    );
    expect(doors).toHaveLength(1);
    expect(doors[0]).toMatchObject({
      tenant: 'cpg2-evil',
      database: `schemas_${e.name}`,
      severity: 'high',
      fixable: false,
      // The database tenant's role cannot connect to this database: not a door here, not named.
      message: expect.stringMatching(
        /granted SELECT to tenant cpg2-vm \(tenant_cpg2_vm\), tenant cpg2-vs \(tenant_cpg2_vs\): another tenant can read it/,
      ),
      fix: expect.stringMatching(/^-- as tenant_cpg2_evil .*revoke all on large object \d+ from "tenant_cpg2_vm", "tenant_cpg2_vs";$/),
    });
    await ok(e, ['tenant', 'delete', 'cpg2-vs', '--yes', '--skip-backup']);
    await ok(e, ['tenant', 'delete', 'cpg2-vd', '--yes', '--skip-backup']);
    await ok(e, ['move', 'cpg2-vm', '--to-shard', 'eu1', '--yes']);
    await ok(e, ['move', 'complete', 'cpg2-vm', '--yes']);
    expect(
      await e.q('us1', 'postgres', `select rolname from pg_roles where rolname in ('tenant_cpg2_vs', 'tenant_cpg2_vd', 'tenant_cpg2_vm')`),
    ).toEqual([]);
    // The attacker's objects stay its own (its role keeps them until its own delete).
    expect(
      (
        await asSuperuser(e, `schemas_${e.name}`, (c) =>
          c.query(`select count(*)::int as n from pg_largeobject_metadata where lomowner::regrole::text = $1`, [evil]),
        )
      ).rows[0].n,
    ).toBe(1);
  });

  it('what tenantctl cannot drop is named with its database; the role cannot log in meanwhile; running again finishes', async () => {
    const e = await env('cpx');
    await ok(e, ['tenant', 'create', 'cpx-a', '--model', 'schema', '--shard', 'us1']);
    const role = await loginAs(e, 'cpx-a');
    // A database someone else made, open to the tenant only (granted by the superuser), where
    // the tenant made a large object.
    const other = `cpx_other_${process.pid}`;
    await asSuperuser(e, 'postgres', async (c) => {
      await c.query(`create database ${other}`);
      await c.query(`revoke connect, temporary on database ${other} from public`);
      await c.query(`grant connect on database ${other} to ${role}`);
    });
    try {
      const oid = await largeObjectsAs(e, other, role, () =>
        withPg(urlAs(e, other, role, PASSWORD), async (c) => (await c.query(`select lo_from_bytea(0, 'x')::int as o`)).rows[0].o),
      );
      const r = await e.cli(['tenant', 'delete', 'cpx-a', '--yes', '--json']);
      expect(r.code).toBe(1);
      // The large object went (tenantctl acts for the role there); the superuser's grant to the
      // role is not tenantctl's to revoke, and is named.
      expect(json(r).error).toMatchObject({
        code: 'DELETE_INCOMPLETE',
        message: expect.stringContaining(
          `role ${role} on shard us1 cannot be dropped: database ${other} (privileges granted to it) (PostgreSQL: `,
        ),
      });
      const left = await asSuperuser(e, other, (c) => c.query('select 1 from pg_largeobject_metadata where oid = $1', [oid]));
      expect(left.rows).toEqual([]);
      const row = await e.db.selectFrom('tenants').select('status').where('slug', '=', 'cpx-a').executeTakeFirstOrThrow();
      expect(row.status).toBe('deleting');
      expect((await e.q('us1', 'postgres', 'select rolcanlogin from pg_roles where rolname = $1', [role]))[0].rolcanlogin).toBe(false);
      expect(await connectError(urlAs(e, `schemas_${e.name}`, role, PASSWORD))).toMatch(/not permitted to log in/);

      // The grantor takes its grant back (the error's fix); the delete then finishes.
      await asSuperuser(e, 'postgres', (c) => c.query(`revoke connect on database ${other} from ${role}`));
      await ok(e, ['tenant', 'delete', 'cpx-a', '--yes']);
      expect(await e.q('us1', 'postgres', 'select 1 from pg_roles where rolname = $1', [role])).toEqual([]);
    } finally {
      await asSuperuser(e, 'postgres', (c) => c.query(`drop database if exists ${other} with (force)`));
    }
  });
});
