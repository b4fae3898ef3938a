import { appendFile, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { json, ownMigrateFleet, tenantCount, until, withPg, type MigrateEnv } from '../helpers/migrate-env.js';
import { databaseUrl } from '../../src/fleet/connection-url.js';
import type { CliRun } from '../helpers/cli.js';
import { closeGate, gateSql } from '../helpers/sql-gate.js';
import { lockTenant } from '../../src/operations/tenant-lock.js';
import { endLockSession } from '../helpers/lock-session.js';

/**
 * One operation per tenant at a time (issue 7): the per-tenant lock, never acting on a tenant
 * that is gone, never adopting what tenantctl did not make, drift blocking provisioning, the bulk
 * pre-check and --max-failures. Real PostgreSQL, the built CLI.
 */
const { env } = ownMigrateFleet();

const tenantRow = async (e: MigrateEnv, slug: string) => e.db.selectFrom('tenants').selectAll().where('slug', '=', slug).executeTakeFirst();
const schemaExists = async (e: MigrateEnv, shard: string, schema: string) =>
  (await e.q(shard, `schemas_${e.name}`, 'select 1 from pg_namespace where nspname = $1', [schema])).length > 0;

describe('concurrent creates of one slug', () => {
  for (const model of ['schema', 'database'] as const) {
    it(`${model}: 12 racing CLI runs, exactly one exit 0, the rest exit 2 or 3, and the tenant ends active`, async () => {
      const e = await env(`race${model[0]}`);
      const slug = `race-${model}`;
      const runs: CliRun[] = await Promise.all(
        Array.from({ length: 12 }, () => e.cli(['tenant', 'create', slug, '--model', model, '--shard', 'us1', '--json'])),
      );
      const codes = runs.map((r) => r.code);
      const row = await tenantRow(e, slug);
      expect(row?.status, JSON.stringify(runs.map((r) => [r.code, r.stdout.slice(0, 300), r.stderr.slice(0, 300)]))).toBe('active');
      expect(codes.filter((c) => c === 0)).toHaveLength(1);
      for (const r of runs) {
        expect([0, 2, 3], r.stderr + r.stdout).toContain(r.code);
        const doc = json(r);
        if (r.code === 3)
          expect(doc.error.message).toMatch(
            new RegExp(`tenant "${slug}" is locked by tenant create by \\S+(?: \\([^)]*\\))?, pid \\d+ on \\S+, since \\d{4}-`),
          );
        if (r.code === 2) expect(doc.error.code).toBe('TENANT_EXISTS');
      }
    });
  }

  it('a second create while the first hangs half-way exits 3 naming the holder; --wait waits until the holder dies, then finishes it', async () => {
    const e = await env('hold');
    let pid = 0;
    const hung = e.cli(['tenant', 'create', 'held', '--model', 'schema', '--shard', 'us1'], {
      env: { TENANTCTL_FAULT: 'create.prepared' },
      onSpawn: (p) => (pid = p),
    });
    await until(async () => (await tenantRow(e, 'held'))?.status === 'provisioning');
    const second = await e.cli(['tenant', 'create', 'held', '--model', 'schema', '--shard', 'us1', '--json']);
    expect(second.code, second.stderr).toBe(3);
    expect(json(second).error.message).toMatch(new RegExp(`locked by tenant create by \\S+(?: \\([^)]*\\))?, pid ${pid} on `));
    const del = await e.cli(['tenant', 'delete', 'held', '--yes']);
    expect(del.code).toBe(3);
    expect(del.stderr).toContain(`pid ${pid}`);
    expect((await tenantRow(e, 'held'))?.status).toBe('provisioning');

    // Killed once the waiting CLI says it found the lock taken (a fixed pause is too short on a busy machine).
    let said = '';
    const waiting = e.cli(['tenant', 'create', 'held', '--model', 'schema', '--shard', 'us1', '--wait'], { onStderr: (s) => (said = s) });
    await until(async () => said.includes('waiting for the tenant lock: tenant create by'), 60_000);
    process.kill(pid, 'SIGKILL');
    await hung;
    const w = await waiting;
    expect(w.code, w.stderr).toBe(0);
    expect(w.stderr).toContain('waiting for the tenant lock: tenant create by');
    expect((await tenantRow(e, 'held'))?.status).toBe('active');
  });
});

describe('never act on a tenant that is gone, never adopt', () => {
  it('a tenant deleted during a slow migrate up is reported gone and its schema is not recreated; deleting the one being migrated exits 3', async () => {
    const e = await env('gone');
    await e.create([
      { slug: 'gone-a', model: 'schema', shard: 'us1' },
      { slug: 'gone-b', model: 'schema', shard: 'us1' },
    ]);
    // The migration waits at a gate the test opens once both deletes returned (no fixed sleep).
    const gate = await closeGate(e, 'us1', 'tl-gone');
    await e.addMigration(
      '0100_slow.sql',
      `create table slow_marker ({{tenant_key_column}} {{tenant_key_type}}, id int);\n${gateSql('tl-gone')}`,
    );
    const run = e.cli(['migrate', 'up', '--json', '--concurrency', '1']);
    // Awaited below; a spawn failure is reported there, not as an unhandled rejection meanwhile.
    run.catch(() => undefined);
    // gone-a migrates first (slug order); while it waits, gone-b is free to delete.
    await gate.reached();
    const [busy, del] = await Promise.all([
      e.cli(['tenant', 'delete', 'gone-a', '--yes', '--json']),
      e.cli(['tenant', 'delete', 'gone-b', '--yes']),
    ]);
    await gate.open();
    expect(busy.code, busy.stderr).toBe(3);
    expect(json(busy).error.message).toMatch(/tenant "gone-a" is locked by migrate up by /);
    expect(del.code, del.stderr).toBe(0);
    const r = await run;
    const doc = json(r);
    expect(r.code, r.stderr).toBe(0);
    const b = doc.results.find((x: any) => x.tenant === 'gone-b');
    expect(b).toMatchObject({ status: 'skipped' });
    expect(b.reason).toMatch(/^gone: the tenant was deleted during the run/);
    expect(doc.targets).toMatchObject({ migrated: 1, gone: 1, failed: 0 });
    expect(await schemaExists(e, 'us1', 't_gone_b')).toBe(false);
    expect(
      await e.q('us1', `schemas_${e.name}`, 'select 1 from tenantctl.schema_migrations where target_schema = $1', ['t_gone_b']),
    ).toEqual([]);
    expect(await tenantRow(e, 'gone-b')).toBeUndefined();
  });

  it('a tenant moved during a migrate up, before its turn, is failed TENANT_MOVED (exit 1), and --only-failed migrates it where it lives now', async () => {
    const e = await env('mvd');
    await e.create([
      { slug: 'mvd-a', model: 'schema', shard: 'us1' },
      { slug: 'mvd-b', model: 'schema', shard: 'us1' },
    ]);
    const gate = await closeGate(e, 'us1', 'tl-mvd');
    await e.addMigration('0100_mvd.sql', `${gateSql('tl-mvd')}alter table projects add column mvd_marker int;\n`);
    const run = e.cli(['migrate', 'up', '--json', '--concurrency', '1']);
    run.catch(() => undefined);
    // mvd-a migrates first (slug order) and waits at the gate; mvd-b moves meanwhile.
    await gate.reached();
    const mv = await e.cli(['move', 'mvd-b', '--to-shard', 'eu1', '--yes']);
    expect(mv.code, mv.stdout + mv.stderr).toBe(0);
    await gate.open();
    const r = await run;
    expect(r.code, r.stdout + r.stderr).toBe(1);
    const doc = json(r);
    expect(doc.results.find((x: any) => x.tenant === 'mvd-b')).toMatchObject({
      status: 'failed',
      error: {
        code: 'TENANT_MOVED',
        message: expect.stringMatching(/^mvd-b moved to eu1\/.* during the run, before its migration here: it was not migrated$/),
      },
    });
    const again = await e.cli(['migrate', 'up', '--only-failed', String(doc.run), '--json']);
    expect(again.code, again.stdout + again.stderr).toBe(0);
    expect(json(again).results).toEqual([
      expect.objectContaining({ tenant: 'mvd-b', shard: 'eu1', status: 'succeeded', applied: ['0100_mvd'] }),
    ]);
  });

  it('a pool tenant deleted while its shared pool target migrates is reported gone, the others migrated', async () => {
    const e = await env('gonep');
    await e.create([
      { slug: 'gonep-1', model: 'pool', shard: 'us1' },
      { slug: 'gonep-2', model: 'pool', shard: 'us1' },
    ]);
    const gate = await closeGate(e, 'us1', 'tl-gonep');
    await e.addMigration(
      '0100_slow.sql',
      `create table slow_marker ({{tenant_key_column}} {{tenant_key_type}}, id int);\n${gateSql('tl-gonep')}`,
    );
    const run = e.cli(['migrate', 'up', '--json']);
    // Awaited below; a spawn failure is reported there, not as an unhandled rejection meanwhile.
    run.catch(() => undefined);
    await gate.reached();
    const del = await e.cli(['tenant', 'delete', 'gonep-1', '--yes']);
    await gate.open();
    expect(del.code, del.stderr).toBe(0);
    const r = await run;
    expect(r.code, r.stderr).toBe(0);
    const doc = json(r);
    expect(doc.results.find((x: any) => x.tenant === 'gonep-1')).toMatchObject({
      status: 'skipped',
      reason: 'gone: the tenant was deleted during the run',
    });
    expect(doc.results.find((x: any) => x.tenant === 'gonep-2')).toMatchObject({ status: 'succeeded', applied: ['0100_slow'] });
  });

  it('tenant create refuses a schema, database or role it did not make (exit 2, nothing recorded)', async () => {
    const e = await env('adopt');
    await e.create([{ slug: 'adopt-seed', model: 'schema', shard: 'us1' }]); // the schemas database exists
    await e.q('us1', `schemas_${e.name}`, 'create schema t_adopt_s');
    await e.q('us1', 'postgres', 'create database t_adopt_d');
    await e.q('us1', 'postgres', 'create role tenant_adopt_r');
    try {
      for (const [slug, model, what] of [
        ['adopt-s', 'schema', 'schema t_adopt_s'],
        ['adopt-d', 'database', 'database t_adopt_d'],
        ['adopt-r', 'schema', 'role tenant_adopt_r'],
      ] as const) {
        const r = await e.cli(['tenant', 'create', slug, '--model', model, '--shard', 'us1', '--json']);
        expect(r.code, r.stdout).toBe(2);
        expect(json(r).error.code).toBe('PLACEMENT_EXISTS');
        expect(json(r).error.message).toContain(what);
        expect(json(r).error.message).toContain('will not adopt');
        expect(await tenantRow(e, slug)).toBeUndefined();
      }
      expect(await schemaExists(e, 'us1', 't_adopt_s')).toBe(true);
      // In a bulk run (the schemas database already known to the process) it is a failed row, not "exists, skipped".
      const file = join(e.migrationsDir, '..', 'adopt.csv');
      await writeFile(file, 'slug,model,shard\nadopt-ok,schema,us1\nadopt-s,schema,us1\n');
      const b = await e.cli(['tenant', 'create', '--from-file', file, '--concurrency', '1', '--json']);
      expect(b.code, b.stdout).toBe(1);
      expect(json(b).results.find((x: any) => x.tenant === 'adopt-s')).toMatchObject({
        status: 'failed',
        error: { code: 'PLACEMENT_EXISTS' },
      });
      expect(await tenantRow(e, 'adopt-ok')).toMatchObject({ status: 'active' });
      expect(await tenantRow(e, 'adopt-s')).toBeUndefined();
    } finally {
      await e.q('us1', 'postgres', 'drop database if exists t_adopt_d');
      await e.q('us1', 'postgres', 'drop role if exists tenant_adopt_r');
    }
  });
});

describe("the catalog session holding a run's tenant locks is lost", () => {
  it('the target it was migrating is reported failed (SHARD_LOST), not migrated, though a move took the tenant meanwhile; migrate up again migrates it where it lives', async () => {
    const e = await env('lost');
    await e.create([{ slug: 'lost-a', model: 'schema', shard: 'us1' }]);
    const gate = await closeGate(e, 'us1', 'tl-lost');
    await e.addMigration('0100_lost.sql', `${gateSql('tl-lost')}alter table projects add column lost_marker int;\n`);
    const run = e.cli(['migrate', 'up', '--tenant', 'lost-a', '--json']);
    run.catch(() => undefined);
    await gate.reached();
    // The session that holds the tenant's lock goes (an administrator, a failover): the lock with it.
    expect(await endLockSession(e)).toEqual([{ ok: true }]);
    const moved = await e.cli(['move', 'lost-a', '--to-shard', 'eu1', '--yes', '--json']);
    expect(moved.code, moved.stdout + moved.stderr).toBe(0);
    await gate.open();
    const r = await run;
    expect(r.code, r.stdout + r.stderr).toBe(1);
    const row = json(r).results.find((x: { tenant: string }) => x.tenant === 'lost-a');
    expect(row).toMatchObject({ status: 'failed', error: { code: 'SHARD_LOST' } });
    expect(row.error.message).toMatch(/lost the catalog connection that held this command's tenant locks/);
    const again = await e.cli(['migrate', 'up', '--json']);
    expect(again.code, again.stdout + again.stderr).toBe(0);
    const t = (await tenantRow(e, 'lost-a'))!;
    expect(t.shard).toBe('eu1');
    const col = await e.q(
      'eu1',
      t.database_name,
      `select 1 from information_schema.columns where table_schema = $1 and table_name = 'projects' and column_name = 'lost_marker'`,
      [t.schema_name],
    );
    expect(col).toHaveLength(1);
  });
});

describe('a read-only command stopped by a signal', () => {
  it('SIGTERM (a job runner) and SIGINT exit 130 and say so on stderr, not 143 or nothing', async () => {
    const e = await env('sigr');
    await e.create([{ slug: 'sigr-a', model: 'schema', shard: 'us1' }]);
    const url = databaseUrl(e.config.shards.find((s) => s.name === 'us1')!.url, `schemas_${e.name}`);
    // A session holding the tracking table: migrate status waits on it until the signal comes.
    await withPg(url, async (holder) => {
      await holder.query('begin; lock table tenantctl.schema_migrations in access exclusive mode');
      const waiting = async () =>
        (
          await e.q(
            'us1',
            `schemas_${e.name}`,
            `select count(*)::int as n from pg_locks where not granted and relation = 'tenantctl.schema_migrations'::regclass and database = (select oid from pg_database where datname = current_database())`,
          )
        )[0].n as number;
      for (const signal of ['SIGTERM', 'SIGINT'] as const) {
        // The killed run's backend still waits (it notices its client gone only once it runs): count.
        const before = await waiting();
        let pid = 0;
        const run = e.cli(['migrate', 'status', '--json'], { onSpawn: (p) => (pid = p) });
        await until(async () => (await waiting()) > before || null, 60_000);
        process.kill(pid, signal);
        const r = await run;
        expect(r.code, `${signal}: ${r.stderr}`).toBe(130);
        expect(r.stderr).toContain(`interrupted (${signal}): stopped before it finished; run the same command again`);
      }
      await holder.query('rollback');
    });
  });
});

describe('a busy tenant in a migrate up', () => {
  it('every failure a lock conflict: exit 3 (busy, run again), as for any command on a busy tenant', async () => {
    const e = await env('mbusy');
    await e.create([{ slug: 'mbusy-a', model: 'schema', shard: 'us1' }]);
    await e.addMigration('0100_more.sql', 'alter table workspaces add column more int;\n');
    const lock = await lockTenant(e.db, 'mbusy-a', { command: 'backup create' });
    try {
      const r = await e.cli(['migrate', 'up', '--tenant', 'mbusy-a', '--json']);
      expect(r.code, r.stdout + r.stderr).toBe(3);
      expect(json(r).results[0]).toMatchObject({
        status: 'failed',
        error: { code: 'LOCKED', message: expect.stringMatching(/tenant "mbusy-a" is locked by backup create by /) },
      });
    } finally {
      await lock.release();
    }
    expect((await e.cli(['migrate', 'up', '--tenant', 'mbusy-a'])).code).toBe(0);
  });
});

describe('drift blocks provisioning', () => {
  it('tenant create exits 2 naming the edited file while an applied migration differs from it, and creates once it is restored', async () => {
    const e = await env('drift');
    await e.create([{ slug: 'drift-a', model: 'schema', shard: 'us1' }]);
    const file = join(e.migrationsDir, (await readdir(e.migrationsDir)).filter((f) => f.endsWith('.sql')).sort()[0]);
    const original = await readFile(file, 'utf8');
    await appendFile(file, '\n-- edited after it was applied\n');
    for (const model of ['schema', 'database', 'pool']) {
      const r = await e.cli(['tenant', 'create', `drift-${model[0]}2`, '--model', model, '--shard', 'us1', '--json']);
      expect(r.code, r.stdout + r.stderr).toBe(2);
      expect(json(r).error.code).toBe('DRIFT');
      expect(json(r).error.message).toContain(file.split('/').pop());
      expect(await tenantRow(e, `drift-${model[0]}2`)).toBeUndefined();
    }
    expect(await schemaExists(e, 'us1', 't_drift_s2')).toBe(false);
    await writeFile(file, original);
    const ok = await e.cli(['tenant', 'create', 'drift-s2', '--model', 'schema', '--shard', 'us1']);
    expect(ok.code, ok.stderr).toBe(0);
  });
});

describe('bulk pre-check and re-runs', () => {
  it('every kind of bad row is refused before anything is created (exit 2, nothing created)', async () => {
    const e = await env('bulk');
    await e.create([{ slug: 'bulk-old', model: 'pool', shard: 'us1' }]);
    const oldKey = (await tenantRow(e, 'bulk-old'))!.key;
    const k1 = 'aaaaaaaa-1111-4111-8111-11111111111b';
    const bad: [string, string][] = [
      ['unknown tier', 'bad-tier,,,nope,,,,'],
      ['unknown region', 'bad-region,,,,mars,,,'],
      ['unknown shard', 'bad-shard,,,,,us9,,'],
      ['unknown model', 'bad-model,,bogus,,,,,'],
      ['residency', 'bad-res,,,,us-east,,,eu'],
      ['key format', 'bad-key,,,,,,not-a-uuid,'],
      ['key of another tenant', `bad-taken,,,,,,${oldKey},`],
      ['key twice in the file', `bad-twice,,,,,,${k1},`],
      ['shard of another region', 'bad-pair,,,,eu-west,us1,,'],
      // Two problems on one row: both in the one list (planning stopped at the tier before).
      ['unknown tier and key format', 'bad-both,,,nope,,,not-a-uuid,'],
      // One key written two ways is one key.
      ['key twice in the file, in capitals', `bad-caps,,,,,,${k1.toUpperCase()},`],
    ];
    const good = ['good-1,,pool,,,us1,,', 'good-2,,schema,,,us1,,', `good-3,,pool,,,us1,${k1},`];
    const before = await tenantCount(e);
    for (const [kind, row] of bad) {
      const file = join(e.migrationsDir, '..', `bulk-${kind.replace(/\W+/g, '-')}.csv`);
      await writeFile(file, `${['slug,name,model,tier,region,shard,key,residency', ...good, row].join('\n')}\n`);
      const r = await e.cli(['tenant', 'create', '--from-file', file, '--json']);
      expect(r.code, `${kind}: ${r.stdout}${r.stderr}`).toBe(2);
      expect(json(r).error.message, kind).toContain(`line 5 (${row.split(',')[0]})`);
      if (kind.startsWith('unknown tier and'))
        expect(json(r).error.message).toMatch(/unknown tier "nope".*"not-a-uuid" is not a valid uuid/s);
      expect(await tenantCount(e), kind).toBe(before);
    }
  });

  it('a re-run whose flags conflict with the recorded placement is refused (single and bulk), not overridden', async () => {
    const e = await env('rerun');
    const failed = await e.cli(['tenant', 'create', 'rerun-a', '--model', 'database', '--shard', 'us1'], {
      env: { TENANTCTL_FAULT: 'create.prepared:fail' },
    });
    expect(failed.code).toBe(1);
    expect((await tenantRow(e, 'rerun-a'))?.status).toBe('failed');
    const r = await e.cli(['tenant', 'create', 'rerun-a', '--region', 'eu-west', '--residency', 'eu', '--json']);
    expect(r.code, r.stdout).toBe(2);
    expect(json(r).error.message).toContain('--region eu-west (recorded: us-east)');
    const file = join(e.migrationsDir, '..', 'rerun.csv');
    await writeFile(file, 'slug,region\nrerun-new,us-east\nrerun-a,eu-west\n');
    const b = await e.cli(['tenant', 'create', '--from-file', file, '--json']);
    expect(b.code, b.stdout).toBe(2);
    expect(await tenantRow(e, 'rerun-new')).toBeUndefined();
    expect(await tenantRow(e, 'rerun-a')).toMatchObject({ status: 'failed', region: 'us-east', shard: 'us1' });
    const ok = await e.cli(['tenant', 'create', 'rerun-a']);
    expect(ok.code, ok.stderr).toBe(0);
    expect(await tenantRow(e, 'rerun-a')).toMatchObject({ status: 'active', shard: 'us1' });
  });
});

describe('--max-failures', () => {
  it('stops scheduling at N failures and the summary says so', async () => {
    const e = await env('maxf');
    await e.create(Array.from({ length: 6 }, (_, i) => ({ slug: `maxf-${i}`, model: 'schema' as const, shard: 'us1' })));
    await e.addMigration('0100_broken.sql', 'select 1/0;\n');
    const r = await e.cli(['migrate', 'up', '--json', '--concurrency', '1', '--on-error', 'continue', '--max-failures', '2']);
    expect(r.code).toBe(1);
    const doc = json(r);
    expect(doc.targets).toMatchObject({ failed: 2, notRun: 4 });
    expect(doc.stopped).toMatchObject({ limit: 2, failuresAtStop: 2, failures: 2 });
    const text = await e.cli(['migrate', 'up', '--concurrency', '1', '--max-failures', '3']);
    expect(text.stdout).toMatch(/stopped scheduling at 3 failure\(s\) \(3 failure\(s\) reached --max-failures\)/);
  });
});
