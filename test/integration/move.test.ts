import type pg from 'pg';
import { beforeAll, describe, expect, it } from 'vitest';
import { json, ownMigrateFleet, until, withPg, type MigrateEnv, tenantDigests } from '../helpers/migrate-env.js';
import { superuserUrl } from '../helpers/test-fleet.js';
import { seed } from '../helpers/seed.js';
import { databaseUrl } from '../../src/fleet/connection-url.js';
import { untilCopying } from '../helpers/move-ops.js';
import { appUrl } from '../helpers/app-url.js';
import { recordDigest } from '../../src/copy/record-digest.js';

/**
 * Tenant moves (issue 10) on a private fleet (us1 in us-east; eu1 in eu-west, residency eu),
 * connected as the least-privileged shard role, through the built CLI. Every move compares the
 * per-table hashes of the tenant's rows before and after, read by the tests themselves.
 */
const { env } = ownMigrateFleet();

type Tenant = {
  slug: string;
  key: string;
  model: string;
  shard: string;
  region: string;
  database_name: string;
  schema_name: string;
  status: string;
};
const tenant = async (e: MigrateEnv, slug: string) =>
  (await e.db.selectFrom('tenants').selectAll().where('slug', '=', slug).executeTakeFirst()) as Tenant | undefined;

const url = (e: MigrateEnv, shard: string, db: string) => databaseUrl(e.config.shards.find((s) => s.name === shard)!.url, db);

const digests = tenantDigests;

async function move(e: MigrateEnv, args: string[], extra: NodeJS.ProcessEnv = {}) {
  return e.cli(['move', ...args, '--yes', '--json'], { env: extra });
}

async function moveOk(e: MigrateEnv, args: string[]) {
  const r = await move(e, args);
  expect(r.code, r.stdout + r.stderr).toBe(0);
  const doc = json(r);
  expect(doc.ok).toBe(true);
  expect(doc.status).toBe('switched');
  // The document on stdout, the phases as they end on stderr (README: progress on stderr).
  expect(r.stderr).toContain(`move ${args[0]}: copy done (`);
  expect(r.stderr).toContain(`move ${args[0]}: unfence done (`);
  return doc;
}

const schemaExists = (e: MigrateEnv, shard: string, db: string, schema: string) =>
  e
    .q(shard, db, 'select 1 from pg_namespace where nspname = $1', [schema])
    .then((r) => r.length > 0)
    .catch(() => false);
const dbExists = (e: MigrateEnv, shard: string, db: string) =>
  e.q(shard, 'postgres', 'select 1 from pg_database where datname = $1', [db]).then((r) => r.length > 0);
const keyRows = (e: MigrateEnv, shard: string, key: string) =>
  e.q(shard, `pool_${e.name}`, 'select count(*)::int as n from app.tasks where tenant_id = $1', [key]).then((r) => r[0].n as number);

let e: MigrateEnv;
beforeAll(async () => {
  e = await env('mv');
  await e.create([
    { slug: 'p-one', model: 'pool', shard: 'us1' },
    { slug: 'p-other', model: 'pool', shard: 'us1' },
    { slug: 'p-two', model: 'pool', shard: 'us1' },
    { slug: 's-one', model: 'schema', shard: 'us1' },
    { slug: 's-two', model: 'schema', shard: 'us1' },
    { slug: 'd-one', model: 'database', shard: 'us1' },
    { slug: 'k-pool', model: 'pool', shard: 'us1' },
    { slug: 'k-schema', model: 'schema', shard: 'us1' },
    { slug: 'tamper', model: 'pool', shard: 'us1' },
    { slug: 'eu-res', model: 'schema', shard: 'eu1' },
    { slug: 'by-table', model: 'schema', shard: 'us1' },
    { slug: 'par-fail', model: 'schema', shard: 'us1' },
  ]);
  for (const s of [
    'p-one',
    'p-other',
    'p-two',
    's-one',
    's-two',
    'd-one',
    'k-pool',
    'k-schema',
    'tamper',
    'eu-res',
    'by-table',
    'par-fail',
  ])
    await seed(e, s, 60, s);
}, 120_000);

describe('model pairs, across shards and within one, hashes equal before and after', () => {
  it('pool us1 → schema eu1, then complete: pool rows gone, other pool tenant untouched', async () => {
    const before = await digests(e, 'p-one');
    const other = await digests(e, 'p-other');
    const doc = await moveOk(e, ['p-one', '--to-shard', 'eu1', '--to-model', 'schema']);
    expect(doc.command).toBe('move');
    expect(doc.phases.map((p: any) => p.phase)).toEqual(['preflight', 'build', 'fence', 'copy', 'rebuild', 'verify', 'switch', 'unfence']);
    expect(doc.tables.every((t: any) => t.source.hash === t.target.hash && t.rows > 0)).toBe(true);
    expect(typeof doc.writeBlockedMs).toBe('number');
    // Every millisecond of the move is in a reported phase (issue 22): the phases add up to its duration.
    const unphased = doc.durationMs - doc.phases.reduce((n: number, p: any) => n + p.ms, 0);
    expect(unphased).toBeGreaterThanOrEqual(0);
    expect(unphased).toBeLessThan(50);
    // move status shows the rebuild (indexes, keys, foreign keys built after the load) as its own phase.
    const during = json(await e.cli(['move', 'status', 'p-one', '--json']));
    expect(Object.keys(during.move.phases).sort()).toEqual([
      'build',
      'copy',
      'fence',
      'preflight',
      'rebuild',
      'switch',
      'unfence',
      'verify',
    ]);
    expect((await e.cli(['move', 'status', 'p-one'])).stdout).toMatch(/rebuild/);
    // The tables the foreign keys join were analyzed before the keys were validated (a manual
    // ANALYZE, not autovacuum's), so each check is planned with statistics.
    const analyzed = await e.q(
      'eu1',
      `schemas_${e.name}`,
      `select relname, analyze_count::int as n from pg_stat_user_tables where schemaname = 't_p_one' and relname in ('users', 'projects', 'tasks', 'comments') order by 1`,
    );
    expect(analyzed.map((r: any) => [r.relname, r.n >= 1])).toEqual([
      ['comments', true],
      ['projects', true],
      ['tasks', true],
      ['users', true],
    ]);
    const t = (await tenant(e, 'p-one'))!;
    expect([t.model, t.shard, t.region, t.status]).toEqual(['schema', 'eu1', 'eu-west', 'active']);
    expect(await digests(e, 'p-one')).toEqual(before);
    // The source stays until complete.
    expect(await keyRows(e, 'us1', t.key)).toBe(60);
    const c = await e.cli(['move', 'complete', 'p-one', '--yes', '--json']);
    expect(c.code, c.stderr).toBe(0);
    expect(await keyRows(e, 'us1', t.key)).toBe(0);
    expect(await digests(e, 'p-other')).toEqual(other);
    const st = json(await e.cli(['move', 'status', 'p-one', '--json']));
    expect(st.move.status).toBe('succeeded');
    expect(st.move.rows).toBe(60 + 60 + 6 + 5 + 1);
  });

  it('schema → database on the same shard (role shared), then database us1 → pool eu1', async () => {
    const before = await digests(e, 's-one');
    await moveOk(e, ['s-one', '--to-shard', 'us1', '--to-model', 'database']);
    expect(await digests(e, 's-one')).toEqual(before);
    expect(await schemaExists(e, 'us1', `schemas_${e.name}`, 't_s_one')).toBe(true);
    expect((await e.cli(['move', 'complete', 's-one', '--yes'])).code).toBe(0);
    expect(await schemaExists(e, 'us1', `schemas_${e.name}`, 't_s_one')).toBe(false);
    // The tenant role survives: it is the database placement's role too.
    expect((await e.q('us1', 'postgres', `select 1 from pg_roles where rolname = 'tenant_s_one'`)).length).toBe(1);
    expect(await e.q('us1', 't_s_one', 'select count(*)::int as n from app.tasks').then((r) => r[0].n)).toBe(60);

    // Into a pool from another model: measured by each row's text (sqlDigest), not by record.
    const intoPool = await moveOk(e, ['s-one', '--to-region', 'eu-west', '--to-model', 'pool']);
    expect(intoPool.tables.every((x: any) => /^\d+:-?\d+:-?\d+$/.test(x.target.hash))).toBe(true);
    const t = (await tenant(e, 's-one'))!;
    expect([t.model, t.shard]).toEqual(['pool', 'eu1']);
    expect(await digests(e, 's-one')).toEqual(before);
    expect(await keyRows(e, 'eu1', t.key)).toBe(60);
    expect((await e.cli(['move', 'complete', 's-one', '--yes'])).code).toBe(0);
    expect(await dbExists(e, 'us1', 't_s_one')).toBe(false);
    expect((await e.q('us1', 'postgres', `select 1 from pg_roles where rolname = 'tenant_s_one'`)).length).toBe(0);
  });

  it('same model across shards: pool → pool and database → database; schema → schema then rollback after the switch', async () => {
    const p = await digests(e, 'p-two');
    // Pool → pool: both sides measured by record (recordDigest), the kind rollback measures again by.
    const pp = await moveOk(e, ['p-two', '--to-shard', 'eu1']);
    expect(pp.tables.every((x: any) => x.source.hash === x.target.hash && x.target.hash.startsWith(`rec:${x.rows}:`))).toBe(true);
    expect(await digests(e, 'p-two')).toEqual(p);
    const d = await digests(e, 'd-one');
    await moveOk(e, ['d-one', '--to-shard', 'eu1']);
    expect((await tenant(e, 'd-one'))!.shard).toBe('eu1');
    expect(await digests(e, 'd-one')).toEqual(d);

    const s = await digests(e, 's-two');
    await moveOk(e, ['s-two', '--to-shard', 'eu1']);
    expect(await digests(e, 's-two')).toEqual(s);
    const rb = await e.cli(['move', 'rollback', 's-two', '--yes', '--json']);
    expect(rb.code, rb.stderr).toBe(0);
    const t = (await tenant(e, 's-two'))!;
    expect([t.shard, t.model, t.status]).toEqual(['us1', 'schema', 'active']);
    expect(await digests(e, 's-two')).toEqual(s);
    expect(await schemaExists(e, 'eu1', `schemas_${e.name}`, 't_s_two')).toBe(false);
    // No move left to complete.
    expect((await e.cli(['move', 'complete', 's-two', '--yes'])).code).toBe(2);
  });

  it('pool → pool with --fast-load: foreign keys checked once, all of them back at the target', async () => {
    const fks = (shard: string) =>
      e
        .q(
          shard,
          `pool_${e.name}`,
          `select count(*)::int as n from pg_constraint where contype = 'f' and connamespace = 'app'::regnamespace`,
        )
        .then((r) => r[0].n);
    const want = await fks('us1');
    const before = await digests(e, 'p-other');
    await moveOk(e, ['p-other', '--to-shard', 'eu1', '--fast-load']);
    expect(await digests(e, 'p-other')).toEqual(before);
    expect(await fks('eu1')).toBe(want);
    expect(want).toBeGreaterThan(5);
  });

  it('rollback after the switch is refused when the tenant wrote at the target', async () => {
    const t = (await tenant(e, 'p-two'))!;
    await e.q(
      'eu1',
      `pool_${e.name}`,
      `update app.tasks set title = 'changed at target' where tenant_id = $1 and ctid = (select ctid from app.tasks where tenant_id = $1 limit 1)`,
      [t.key],
    );
    // The application is in the middle of another write (its transaction open): the refusal
    // comes without fencing it first (a fence would wait on that transaction, then fail LOCKED).
    const app = await appUrl(e, 'p-two');
    await withPg(app.url, async (c) => {
      await c.query('begin');
      await c.query(`update tasks set title = 'in flight' where ctid = (select ctid from tasks limit 1)`);
      const r = await e.cli(['move', 'rollback', 'p-two', '--yes', '--json']);
      expect(r.code, r.stdout + r.stderr).toBe(2);
      expect(json(r).error.message).toMatch(/written at .* since the switch/);
      await c.query('commit');
    });
    expect((await tenant(e, 'p-two'))!.shard).toBe('eu1');
    // Its source rows in us1's pool, kept (fenced) for move complete or rollback, are not orphans to audit.
    const audit = json(await e.cli(['audit', '--shard', 'us1', '--json']));
    const orphans = audit.findings.filter((f: any) => f.check === 'catalog.orphan-pool-rows');
    expect(orphans.filter((f: any) => f.message.includes(t.key))).toEqual([]);
  });
});

describe('verification and refusals', () => {
  it('a tampered copy is caught: nothing switched, copy removed, fence lifted', async () => {
    const t = (await tenant(e, 'tamper'))!;
    const before = await digests(e, 'tamper');
    // A pool → pool move is measured by record: a changed value, then a missing row, is caught by it.
    const gone = json(await move(e, ['tamper', '--to-shard', 'eu1'], { TENANTCTL_FAULT: 'move.verify:tamper-missing' }));
    expect(gone.error.code).toBe('MOVE_VERIFY');
    const short = gone.tables.filter((x: any) => x.source.hash !== x.target.hash);
    expect(short.map((x: any) => [x.table, x.source.rows - x.target.rows])).toEqual([['comments', 1]]);
    expect(short[0].target.hash).toMatch(/^rec:/);
    expect(await keyRows(e, 'eu1', t.key)).toBe(0);
    const r = await move(e, ['tamper', '--to-shard', 'eu1'], { TENANTCTL_FAULT: 'move.verify:tamper' });
    expect(r.code, r.stderr).toBe(1);
    const doc = json(r);
    expect(doc.ok).toBe(false);
    expect(doc.error.code).toBe('MOVE_VERIFY');
    const changed = doc.tables.filter((x: any) => x.source.hash !== x.target.hash);
    expect(changed.map((x: any) => [x.source.rows === x.target.rows, x.target.hash.slice(0, 4)])).toEqual([[true, 'rec:']]);
    const now = (await tenant(e, 'tamper'))!;
    expect([now.shard, now.status]).toEqual(['us1', 'active']);
    expect(await keyRows(e, 'eu1', t.key)).toBe(0);
    expect(await digests(e, 'tamper')).toEqual(before);
    // Writes work again (the fence is lifted).
    await withPg(
      url(e, 'us1', `pool_${e.name}`).replace(
        /\/\/[^@]*@/,
        `//${e.config.servingRole.name}:${encodeURIComponent(e.config.servingRole.password ?? '')}@`,
      ),
      async (c) => {
        await c.query('select set_config($1, $2, false)', [e.config.rls.setting, t.key]);
        await c.query(`update app.tasks set title = title where tenant_id = $1`, [t.key]);
      },
    );
    // A leftover row of the key in the target pool (counted while the source is read) refuses the move, nothing changed.
    await e.q('eu1', `pool_${e.name}`, `insert into app.workspaces (id, name) values ($1, 'leftover')`, [t.key]);
    const left = await move(e, ['tamper', '--to-shard', 'eu1']);
    expect([left.code, json(left).error.code]).toEqual([2, 'KEY_IN_USE']);
    expect(json(left).error.message).toMatch(/workspaces \(1\)/);
    await e.q('eu1', `pool_${e.name}`, 'delete from app.workspaces where id = $1', [t.key]);
    expect((await tenant(e, 'tamper'))!.status).toBe('active');
  });

  it('into a new placement, table by table: the tables copied at once, each committed and keyed at the target while others copy; a tamper there is caught', async () => {
    const before = await digests(e, 'by-table');
    const src = { shard: 'us1', db: `schemas_${e.name}` };
    const dst = { shard: 'eu1', db: `schemas_${e.name}` };
    const counts = (at: { shard: string; db: string }) =>
      e.q(
        at.shard,
        at.db,
        `select (select count(*)::int from t_by_table.workspaces) as workspaces, (select count(*)::int from t_by_table.users) as users,
                (select count(*)::int from t_by_table.projects) as projects, (select count(*)::int from t_by_table.tasks) as tasks,
                (select count(*)::int from t_by_table.comments) as comments`,
      );
    // The copied tables' indexes, keys among them (task_statuses, not copied, is keyed at the end).
    const indexes = (at: { shard: string; db: string }) =>
      e.q(
        at.shard,
        at.db,
        `select i.indexname, i.indexdef, k.contype from pg_indexes i
           left join pg_constraint k on k.conname = i.indexname and k.connamespace = 't_by_table'::regnamespace
          where i.schemaname = 't_by_table' and i.tablename <> 'task_statuses' order by 1`,
      );
    const want = { rows: (await counts(src))[0], indexes: await indexes(src) };
    let pid = 0;
    const run = e.cli(['move', 'by-table', '--to-shard', 'eu1', '--yes', '--json'], {
      env: { TENANTCTL_FAULT: 'move.copy' },
      onSpawn: (p) => (pid = p),
    });
    await untilCopying(e.db, 'by-table');
    // Paused after the first table (workspaces) is in: the others were copied at the same time, not
    // after it, so every table's rows are committed there (another connection sees them) and all
    // its indexes and keys built back on the target's job connections while the move is held.
    const seen = await until(async () => {
      const got = { rows: (await counts(dst))[0], indexes: await indexes(dst) };
      return JSON.stringify(got) === JSON.stringify(want) ? got : undefined;
    }, 20_000);
    expect(seen).toEqual(want);
    process.kill(pid, 'SIGKILL');
    expect((await run).signal).toBe('SIGKILL');
    // Resumed (the killed copy removed first) with a changed row at the target: each table is
    // measured as it is built, and the change is caught there.
    const r = await move(e, ['by-table', '--to-shard', 'eu1'], { TENANTCTL_FAULT: 'move.verify:tamper' });
    expect(r.code, r.stderr).toBe(1);
    const doc = json(r);
    expect(doc.error.code).toBe('MOVE_VERIFY');
    expect(doc.tables.some((x: any) => x.source.hash !== x.target.hash)).toBe(true);
    expect(await schemaExists(e, 'eu1', `schemas_${e.name}`, 't_by_table')).toBe(false);
    expect((await tenant(e, 'by-table'))!.status).toBe('active');
    expect(await digests(e, 'by-table')).toEqual(before);
    // Then moved: every constraint (keys attached to indexes built apart, foreign keys) as at the source.
    const constraints = (at: { shard: string; db: string }) =>
      e.q(
        at.shard,
        at.db,
        `select conname, contype, convalidated, pg_get_constraintdef(oid) as def from pg_constraint
          where connamespace = 't_by_table'::regnamespace order by 1`,
      );
    const keys = await constraints(src);
    await moveOk(e, ['by-table', '--to-shard', 'eu1']);
    expect(await constraints(dst)).toEqual(keys);
    expect(await indexes(dst)).toEqual(want.indexes);
    expect(await digests(e, 'by-table')).toEqual(before);
  });

  it('into a new placement: a failure in one table part while others copy fails the move, removes the copy and leaves the source serving', async () => {
    const before = await digests(e, 'par-fail');
    // The first table's part fails once it is in (the injected fault), the other tables' copies in flight.
    const r = await move(e, ['par-fail', '--to-shard', 'eu1'], { TENANTCTL_FAULT: 'move.copy:fail' });
    expect(r.code, r.stderr).toBe(1);
    expect(json(r).error.message).toMatch(/injected failure at move.copy/);
    expect(await schemaExists(e, 'eu1', `schemas_${e.name}`, 't_par_fail')).toBe(false);
    const now = (await tenant(e, 'par-fail'))!;
    expect([now.shard, now.status]).toEqual(['us1', 'active']);
    expect(await digests(e, 'par-fail')).toEqual(before);
    // The application writes again through the URL resolve gives it (the fence lifted).
    const app = await appUrl(e, 'par-fail');
    await withPg(app.url, async (c) => {
      const u = await c.query(`update "${app.schema}".tasks set title = title || '!'`);
      expect(u.rowCount).toBe(60);
    });
  });

  it('the record digest both sides of a new placement are measured by: any row order the same; a value changed or swapped between rows, or a row more, differs', async () => {
    const t = { table: 'probe', keyColumn: 'tenant_id', columns: ['tenant_id', 'a', 'b', 'n', 'at', 'tag'], keyIndex: 0 };
    const digestOf = (rows: string) =>
      withPg(url(e, 'us1', `schemas_${e.name}`), async (c) => {
        await c.query('begin');
        try {
          await c.query(`create type pg_temp.tag as enum ('x', 'y')`);
          await c.query(`create temp table probe (tenant_id uuid, a uuid, b text, n numeric, at timestamptz, tag pg_temp.tag)`);
          await c.query(`insert into probe values ${rows}`);
          const schema = (await c.query(`select nspname from pg_namespace where oid = pg_my_temp_schema()`)).rows[0].nspname;
          return (await recordDigest(c, t, { model: 'schema', schema, key: 'k' }, e.config)).hash;
        } finally {
          await c.query('rollback');
        }
      });
    const k = `'${'0'.repeat(8)}-0000-0000-0000-000000000001'`;
    const u = (i: number) => `'${'0'.repeat(8)}-0000-0000-0000-00000000000${i}'`;
    const row = (a: number, b: string, n: string, tag: string) => `(${k}, ${u(a)}, '${b}', ${n}, '2026-01-0${a} 10:00+00', '${tag}')`;
    const base = await digestOf([row(1, 'one', '1.0', 'x'), row(2, 'two', '2', 'y')].join(', '));
    expect(base).toMatch(/^rec:2:-?\d+:-?\d+$/);
    expect(await digestOf([row(2, 'two', '2', 'y'), row(1, 'one', '1.0', 'x')].join(', '))).toBe(base);
    for (const other of [
      [row(1, 'one', '1.0', 'x'), row(2, 'twO', '2', 'y')],
      [row(1, 'two', '1.0', 'x'), row(2, 'one', '2', 'y')],
      [row(1, 'one', '1.00', 'x'), row(2, 'two', '2', 'y')],
      [row(1, 'one', '1.0', 'y'), row(2, 'two', '2', 'x')],
      [row(1, 'one', '1.0', 'x'), row(2, 'two', '2', 'y'), row(2, 'two', '2', 'y')],
    ])
      expect(await digestOf(other.join(', '))).not.toBe(base);
  });

  it('residency: an eu tenant is refused a us shard (exit 2, nothing recorded)', async () => {
    const r = await move(e, ['eu-res', '--to-shard', 'us1']);
    expect(r.code).toBe(2);
    expect(json(r).error.code).toBe('RESIDENCY');
    expect(json(r).error.message).toMatch(/breaks its residency "eu"/);
    const ops = await e.db.selectFrom('operations').selectAll().where('kind', '=', 'move').where('tenant_slug', '=', 'eu-res').execute();
    expect(ops).toHaveLength(0);
  });

  it('unknown shard or region, --online, --dry-run: exit 2 or a plan, nothing changed', async () => {
    expect(json(await move(e, ['k-pool', '--to-shard', 'nope'])).error.code).toBe('UNKNOWN_SHARD');
    expect(json(await move(e, ['k-pool', '--to-region', 'mars'])).error.code).toBe('UNKNOWN_REGION');
    // Online moves keep the model; the least-privileged role would go by trigger capture (dry run).
    const on = await move(e, ['k-pool', '--to-shard', 'eu1', '--to-model', 'database', '--online']);
    expect(on.code).toBe(2);
    expect(json(on).error.code).toBe('ONLINE_CROSS_MODEL');
    const onDry = await e.cli(['move', 'k-pool', '--to-shard', 'eu1', '--online', '--dry-run', '--json']);
    expect(onDry.code, onDry.stderr).toBe(0);
    expect(json(onDry)).toMatchObject({ status: 'planned', onlineVia: 'triggers' });
    const dry = await e.cli(['move', 'k-pool', '--to-shard', 'eu1', '--to-model', 'database', '--dry-run', '--json']);
    expect(dry.code).toBe(0);
    expect(json(dry).to.target).toBe('eu1/t_k_pool/app');
    expect((await tenant(e, 'k-pool'))!.shard).toBe('us1');
    expect(await dbExists(e, 'eu1', 't_k_pool')).toBe(false);
    // doctor says per shard whether online moves can work (the test role is not a superuser).
    const doc = json(await e.cli(['doctor', '--json']));
    expect(doc.checks.find((c: any) => c.check === 'online moves on us1').detail).toMatch(
      /goes by trigger capture \(logical replication .*to it not possible: .*not a superuser/,
    );
  });
});

describe('fence, kill, resume, rollback, concurrency', () => {
  async function killedInCopy(slug: string, args: string[], during: (pid: number) => Promise<void>) {
    let pid = 0;
    const run = e.cli(['move', slug, ...args, '--yes', '--json'], {
      env: { TENANTCTL_FAULT: 'move.copy' },
      onSpawn: (p) => (pid = p),
    });
    await untilCopying(e.db, slug);
    await during(pid);
    process.kill(pid, 'SIGKILL');
    const r = await run;
    expect(r.signal).toBe('SIGKILL');
  }

  it('pool: writes fail while fenced, reads go on, other tenants write; a second move exits 3; SIGKILL then resume', async () => {
    const t = (await tenant(e, 'k-pool'))!;
    const other = (await tenant(e, 'tamper'))!;
    const before = await digests(e, 'k-pool');
    const serving = (db: string) =>
      url(e, 'us1', db).replace(/\/\/[^@]*@/, `//${e.config.servingRole.name}:${encodeURIComponent(e.config.servingRole.password ?? '')}@`);
    await killedInCopy('k-pool', ['--to-shard', 'eu1'], async () => {
      await withPg(serving(`pool_${e.name}`), async (c) => {
        await c.query('select set_config($1, $2, false)', [e.config.rls.setting, t.key]);
        const n = await c.query('select count(*)::int as n from app.tasks');
        expect(n.rows[0].n).toBe(60);
        await expect(c.query(`update app.tasks set title = 'x' where id = (select id from app.tasks limit 1)`)).rejects.toMatchObject({
          code: '25006',
          message: expect.stringMatching(/paused: tenantctl is moving it/),
        });
        await expect(c.query(`insert into app.projects (tenant_id, name) values ($1, 'new')`, [t.key])).rejects.toMatchObject({
          code: '25006',
        });
        await expect(c.query('delete from app.comments')).rejects.toMatchObject({ code: '25006' });
        await c.query('select set_config($1, $2, false)', [e.config.rls.setting, other.key]);
        const u = await c.query(`update app.tasks set title = title where tenant_id = $1`, [other.key]);
        expect(u.rowCount).toBe(60);
      });
      const second = await move(e, ['k-pool', '--to-shard', 'eu1']);
      expect(second.code).toBe(3);
      expect(json(second).error.message).toMatch(/locked by move/);
      const st = json(await e.cli(['move', 'status', 'k-pool', '--json']));
      expect(st.move.status).toBe('running');
      expect(st.move.live).toBe(true);
      expect((await tenant(e, 'k-pool'))!.status).toBe('moving');
    });
    // Killed: the catalog still points at the whole source; status says so.
    const st = json(await e.cli(['move', 'status', 'k-pool', '--json']));
    expect([st.move.status, st.move.live]).toEqual(['running', false]);
    expect((await tenant(e, 'k-pool'))!.shard).toBe('us1');
    expect(await digests(e, 'k-pool')).toEqual(before);
    const doc = await moveOk(e, ['k-pool', '--to-shard', 'eu1']);
    expect(doc.resumed.move).toBe(st.move.id);
    expect((await tenant(e, 'k-pool'))!.shard).toBe('eu1');
    expect(await digests(e, 'k-pool')).toEqual(before);
  });

  it('schema → database: writes fail while fenced, reads go on; SIGKILL then rollback removes the half copy and the fence', async () => {
    const t = (await tenant(e, 'k-schema'))!;
    const before = await digests(e, 'k-schema');
    const asTenant = (fn: (c: pg.Client) => Promise<void>) =>
      withPg(superuserUrl(url(e, 'us1', `schemas_${e.name}`)), async (c) => {
        await c.query('set role tenant_k_schema');
        await fn(c);
      });
    await killedInCopy('k-schema', ['--to-shard', 'eu1', '--to-model', 'database'], async () => {
      await asTenant(async (c) => {
        expect((await c.query(`select count(*)::int as n from "${t.schema_name}".tasks`)).rows[0].n).toBe(60);
        await expect(c.query(`update "${t.schema_name}".tasks set title = 'x'`)).rejects.toMatchObject({ code: '25006' });
      });
      expect(await dbExists(e, 'eu1', 't_k_schema')).toBe(true);
    });
    // The fence survives the kill (triggers) until the next move command lifts it.
    await asTenant(async (c) => {
      await expect(c.query(`update "${t.schema_name}".tasks set title = 'x'`)).rejects.toMatchObject({ code: '25006' });
    });
    const rb = await e.cli(['move', 'rollback', 'k-schema', '--yes', '--json']);
    expect(rb.code, rb.stderr).toBe(0);
    expect(json(rb).cleaned.join(' ')).toMatch(/lifted the write fence.*removed the partial copy/);
    expect(await dbExists(e, 'eu1', 't_k_schema')).toBe(false);
    const now = (await tenant(e, 'k-schema'))!;
    expect([now.shard, now.model, now.status]).toEqual(['us1', 'schema', 'active']);
    expect(await digests(e, 'k-schema')).toEqual(before);
    await asTenant(async (c) => {
      await c.query(`update "${t.schema_name}".tasks set title = title`);
    });
    expect(json(await e.cli(['move', 'status', 'k-schema', '--json'])).move.status).toBe('rolled back');
  });
});

describe('versions and primary keys, in a fleet of their own', () => {
  it('a pool target behind is migrated first; one ahead is refused; a table without a primary key is refused (exit 2, nothing changed)', async () => {
    const f = await env('mvpk');
    await f.create([
      { slug: 'np', model: 'schema', shard: 'us1' },
      { slug: 'lo', model: 'pool', shard: 'us1' },
      { slug: 'hi', model: 'schema', shard: 'us1' },
    ]);
    await f.addMigration(
      '0004_notes.sql',
      'create table notes (tenant_id {{tenant_key_type}} not null, id bigserial, body text, primary key (tenant_id, id));',
    );
    expect((await f.cli(['migrate', 'up', '--tenant', 'hi,np'])).code).toBe(0);
    const hiKey = (await f.db.selectFrom('tenants').select('key').where('slug', '=', 'hi').executeTakeFirstOrThrow()).key;
    await f.q('us1', 'schemas_mvpk', `insert into t_hi.notes (tenant_id, body) select $1, 'n' || i from generate_series(1, 7) i`, [hiKey]);
    // The eu1 pool does not exist yet: it is made and brought to the tenant's version (0004).
    const r1 = await f.cli(['move', 'hi', '--to-shard', 'eu1', '--to-model', 'pool', '--yes', '--json']);
    expect(r1.code, r1.stderr + r1.stdout).toBe(0);
    expect(json(r1).targetMigrated).toContain('0004_notes');
    // The eu1 pool is now at 0004, the us1 pool tenant at 0003: refused, with the way out.
    const r2 = await f.cli(['move', 'lo', '--to-shard', 'eu1', '--yes', '--json']);
    expect(r2.code).toBe(2);
    expect(json(r2).error.message).toMatch(/newer migration version/);
    expect(json(r2).error.hint).toMatch(/migrate up --tenant/);
    await f.addMigration(
      '0005_audit_log.sql',
      'create table audit_log (tenant_id {{tenant_key_type}} not null, at timestamptz not null default now(), what text);',
    );
    expect((await f.cli(['migrate', 'up', '--tenant', 'np'])).code).toBe(0);
    const r3 = await f.cli(['move', 'np', '--to-shard', 'eu1', '--yes', '--json']);
    expect(r3.code).toBe(2);
    expect(json(r3).error.message).toMatch(/audit_log .*no primary key/);
    expect((await f.db.selectFrom('tenants').select('shard').where('slug', '=', 'np').executeTakeFirstOrThrow()).shard).toBe('us1');
    expect(
      await f.db.selectFrom('operations').select('id').where('kind', '=', 'move').where('tenant_slug', 'in', ['lo', 'np']).execute(),
    ).toHaveLength(0);
  }, 90_000);
});
