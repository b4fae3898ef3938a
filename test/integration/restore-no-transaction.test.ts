import { describe, expect, it } from 'vitest';
import { backupsOf } from '../helpers/backups.js';
import { json, ownMigrateFleet, tenantCount, tenantDigests, type MigrateEnv } from '../helpers/migrate-env.js';
import { untilRestorePhase } from '../helpers/restore-ops.js';
import { seed, tenant } from '../helpers/seed.js';

/**
 * Restore when a migration file runs outside a transaction (`-- tenantctl:no-transaction`, CREATE
 * INDEX CONCURRENTLY; issue 9): schema and database placements are built step by step, the load
 * and its checks in one transaction; a pool restore that would need such a file inside its one
 * transaction is refused. Private fleet, built CLI, real PostgreSQL 15.
 */
const { env } = ownMigrateFleet();

const CONCURRENT = '0004_tasks_title_concurrently.sql';
const addConcurrentIndex = (e: MigrateEnv) =>
  e.addMigration(CONCURRENT, '-- tenantctl:no-transaction\ncreate index concurrently tasks_title_idx on tasks (title);\n');

async function backupOf(e: MigrateEnv, slug: string): Promise<string> {
  const r = await e.cli(['backup', 'create', slug, '--json']);
  expect(r.code, r.stderr + r.stdout).toBe(0);
  return json(r).results[0].backup;
}

/** The concurrent index in the tenant's placement, valid. */
async function hasConcurrentIndex(e: MigrateEnv, slug: string): Promise<boolean> {
  const t = (await tenant(e, slug))!;
  const rows = await e.q(
    t.shard,
    t.database_name,
    `select i.indisvalid as valid from pg_index i join pg_class c on c.oid = i.indexrelid join pg_namespace n on n.oid = c.relnamespace
      where n.nspname = $1 and c.relname = 'tasks_title_idx'`,
    [t.schema_name],
  );
  return rows.length === 1 && rows[0].valid === true;
}

/** The migrations applied to the tenant's placement, by name. */
const appliedNames = async (e: MigrateEnv, t: { shard: string; database_name: string; schema_name: string }) =>
  (
    await e.q(t.shard, t.database_name, 'select name from tenantctl.schema_migrations where target_schema = $1 order by name', [
      t.schema_name,
    ])
  ).map((a) => a.name);

const schemaThere = async (e: MigrateEnv, schema: string) =>
  (await e.q('us1', `schemas_${e.name}`, 'select 1 from pg_namespace where nspname = $1', [schema])).length > 0;
const databaseThere = async (e: MigrateEnv, database: string) =>
  (await e.q('us1', 'postgres', 'select 1 from pg_database where datname = $1', [database])).length > 0;
const roleThere = async (e: MigrateEnv, role: string) =>
  (await e.q('us1', 'postgres', 'select 1 from pg_roles where rolname = $1', [role])).length > 0;

describe('a fleet with a no-transaction migration', () => {
  it('schema tenant: backup, delete, restore, replace; clones into the database and pool models: same hashes, the concurrent index there', async () => {
    const e = await env('ntrt');
    await addConcurrentIndex(e);
    await e.create([{ slug: 'nt-s', model: 'schema', shard: 'us1' }]);
    await seed(e, 'nt-s', 120, 's');
    const before = await tenantDigests(e, 'nt-s');
    const id = await backupOf(e, 'nt-s');

    const del = await e.cli(['tenant', 'delete', 'nt-s', '--yes', '--skip-backup', '--json']);
    expect(del.code, del.stderr).toBe(0);
    const r = await e.cli(['restore', id, '--json']);
    expect(r.code, r.stderr + r.stdout).toBe(0);
    expect(json(r).result).toMatchObject({ status: 'succeeded', tenant: 'nt-s' });
    expect(await tenantDigests(e, 'nt-s')).toEqual(before);
    expect(await hasConcurrentIndex(e, 'nt-s')).toBe(true);
    const back = (await tenant(e, 'nt-s'))!;
    expect(back.schema_version).toBe('0004_tasks_title_concurrently');
    // The restored tenant works: its foreign keys and the tenant role's grants are in place.
    await e.q('us1', back.database_name, `insert into "${back.schema_name}".projects (tenant_id, name) values ($1, 'after')`, [back.key]);
    await e.q('us1', back.database_name, `delete from "${back.schema_name}".projects where name = 'after'`);
    const granted = await e.q('us1', back.database_name, `select has_table_privilege('tenant_nt_s', $1, 'select') as ok`, [
      `"${back.schema_name}".tasks`,
    ]);
    expect(granted[0].ok).toBe(true);

    // In place: a fresh schema beside the live one, swapped in under the tenant's name at the end.
    await e.q('us1', back.database_name, `update "${back.schema_name}".tasks set title = 'changed'`);
    expect(await tenantDigests(e, 'nt-s')).not.toEqual(before);
    const rp = await e.cli(['restore', id, '--replace', '--yes', '--json']);
    expect(rp.code, rp.stderr + rp.stdout).toBe(0);
    expect(await tenantDigests(e, 'nt-s')).toEqual(before);
    expect(await hasConcurrentIndex(e, 'nt-s')).toBe(true);
    expect((await tenant(e, 'nt-s'))!.schema_name).toBe(back.schema_name);
    const beside = await e.q('us1', back.database_name, 'select nspname from pg_namespace where nspname like $1', [
      `${back.schema_name}\\_\\_%`,
    ]);
    expect(beside).toEqual([]);
    // The migration records follow the names: the restored schema is at head under its own.
    const applied = await e.q(
      'us1',
      back.database_name,
      'select count(*)::int as n from tenantctl.schema_migrations where target_schema = $1',
      [back.schema_name],
    );
    expect(applied[0].n).toBe(4);

    for (const [as, model] of [
      ['nt-as-db', 'database'],
      ['nt-as-pool', 'pool'],
    ] as const) {
      const c = await e.cli(['restore', id, '--as', as, '--model', model, '--json']);
      expect(c.code, c.stderr + c.stdout).toBe(0);
      expect((await tenant(e, as))!.model).toBe(model);
      expect(await tenantDigests(e, as)).toEqual(before);
      expect(await hasConcurrentIndex(e, as)).toBe(true);
    }
  });

  it('a backup taken before the no-transaction migration was added restores after it, migrated to head through it', async () => {
    const e = await env('ntold');
    await e.create([{ slug: 'old-s', model: 'schema', shard: 'us1' }]);
    await seed(e, 'old-s', 60, 'o');
    const before = await tenantDigests(e, 'old-s');
    const id = await backupOf(e, 'old-s');
    await addConcurrentIndex(e);
    const up = await e.cli(['migrate', 'up', '--json']);
    expect(up.code, up.stderr + up.stdout).toBe(0);
    for (const [as, model] of [
      ['old-s2', 'schema'],
      ['old-d2', 'database'],
    ] as const) {
      const r = await e.cli(['restore', id, '--as', as, '--model', model, '--json']);
      expect(r.code, r.stderr + r.stdout).toBe(0);
      const t = (await tenant(e, as))!;
      expect(t.schema_version).toBe('0004_tasks_title_concurrently');
      expect(await hasConcurrentIndex(e, as)).toBe(true);
      expect(await tenantDigests(e, as)).toEqual(before);
      expect(await appliedNames(e, t)).toEqual([
        '0001_workspaces_and_users',
        '0002_projects_and_tasks',
        '0003_comments',
        '0004_tasks_title_concurrently',
      ]);
    }
    // migrate status sees every target at head: the restored placements are like any other.
    const st = await e.cli(['migrate', 'up', '--json']);
    expect(st.code, st.stderr + st.stdout).toBe(0);
    expect(json(st).results.every((x: any) => (x.applied ?? []).length === 0)).toBe(true);
  });

  it('a pool restore that would stage the rows through the no-transaction file is refused, naming it (exit 2, nothing changed)', async () => {
    const e = await env('ntpool');
    await e.create([{ slug: 'np-p', model: 'pool', shard: 'us1' }]);
    await seed(e, 'np-p', 40, 'p');
    const id = await backupOf(e, 'np-p');
    await addConcurrentIndex(e);
    const up = await e.cli(['migrate', 'up', '--json']);
    expect(up.code, up.stderr + up.stdout).toBe(0);
    const t = (await tenant(e, 'np-p'))!;
    await e.q('us1', t.database_name, `update app.tasks set title = 'live' where tenant_id = $1`, [t.key]);
    const live = await tenantDigests(e, 'np-p');
    const n = await tenantCount(e);
    const backups = async () => json(await e.cli(['backup', 'list', 'np-p', '--json'])).backups.length;
    const kept = await backups();
    for (const args of [
      ['restore', id, '--as', 'np-p2', '--json'],
      ['restore', id, '--replace', '--yes', '--json'],
    ]) {
      const r = await e.cli(args);
      expect(r.code, r.stderr + r.stdout).toBe(2);
      const err = json(r).error;
      expect(err.code).toBe('MIGRATION_FILES');
      expect(err.message).toMatch(
        /backup np-p\.\S+ is at migration version 0003_comments and the pool us1\/pool_ntpool\/app (is|will be) at 0004_tasks_title_concurrently: .*0004_tasks_title_concurrently\.sql runs outside a transaction/,
      );
      expect(err.hint).toMatch(/--model schema/);
    }
    expect(await tenantCount(e)).toBe(n);
    expect(await tenantDigests(e, 'np-p')).toEqual(live);
    // No safety backup was taken, no restore recorded.
    expect(await backups()).toBe(kept);
    const ops = await e.db.selectFrom('operations').select('id').where('kind', '=', 'restore').execute();
    expect(ops).toHaveLength(0);
    // As a schema tenant it restores (step by step).
    const ok = await e.cli(['restore', id, '--as', 'np-s', '--model', 'schema', '--json']);
    expect(ok.code, ok.stderr + ok.stdout).toBe(0);
    expect(await hasConcurrentIndex(e, 'np-s')).toBe(true);
    // A backup at the pool's own version needs no migration in the load's transaction: in place.
    const atHead = await backupOf(e, 'np-p');
    await e.q('us1', t.database_name, `delete from app.comments where tenant_id = $1`, [t.key]);
    expect(await tenantDigests(e, 'np-p')).not.toEqual(live);
    const rp = await e.cli(['restore', atHead, '--replace', '--yes', '--json']);
    expect(rp.code, rp.stderr + rp.stdout).toBe(0);
    expect(await tenantDigests(e, 'np-p')).toEqual(live);
  });
});

describe('killed or failed half-way', () => {
  it('SIGKILL after the load committed: nothing registered, the live tenant intact; the next restore removes the leftover', async () => {
    const e = await env('ntkill');
    await addConcurrentIndex(e);
    await e.create([
      { slug: 'nk-s', model: 'schema', shard: 'us1' },
      { slug: 'nk-d', model: 'database', shard: 'us1' },
    ]);
    await seed(e, 'nk-s', 50, 's');
    await seed(e, 'nk-d', 50, 'd');
    const [sid, did] = await backupsOf(e, ['nk-s', 'nk-d']);
    const src = await tenantDigests(e, 'nk-s');
    const backupOfD = await tenantDigests(e, 'nk-d');
    const d = (await tenant(e, 'nk-d'))!;
    await e.q('us1', d.database_name, `update app.tasks set title = 'live'`);
    const liveD = await tenantDigests(e, 'nk-d');

    for (const [slug, args] of [
      ['nk-new', ['restore', sid, '--as', 'nk-new']],
      ['nk-d', ['restore', did, '--replace', '--yes']],
    ] as const) {
      let child = 0;
      const run = e.cli([...args], { env: { TENANTCTL_FAULT: 'restore.loaded' }, onSpawn: (p) => (child = p) });
      // A failed spawn rejects it: handled now, thrown at `await run` below (not unhandled meanwhile).
      run.catch(() => undefined);
      const op: any = await untilRestorePhase(e.db, slug, ['loaded']);
      process.kill(child, 'SIGKILL');
      expect((await run).signal).toBe('SIGKILL');
      const left = op.args.placement;
      if (slug === 'nk-new') {
        expect(await tenant(e, 'nk-new')).toBeUndefined();
        // The placement built step by step is there, loaded: a leftover for the next restore.
        expect(await schemaThere(e, left.schema_name)).toBe(true);
        const rows = await e.q('us1', left.database_name, `select count(*)::int as n from "${left.schema_name}".tasks`);
        expect(rows[0].n).toBe(50);
      } else {
        expect((await tenant(e, 'nk-d'))!.database_name).toBe(d.database_name);
        expect(await tenantDigests(e, 'nk-d')).toEqual(liveD);
        expect(await databaseThere(e, left.database_name)).toBe(true);
      }
      const again = await e.cli([...args, '--json']);
      expect(again.code, again.stderr + again.stdout).toBe(0);
      expect(JSON.stringify(json(again)), 'the result names the sweep').toContain(`restore ${op.id} of ${slug} was killed`);
      const closed = await e.db.selectFrom('operations').selectAll().where('id', '=', op.id).executeTakeFirstOrThrow();
      expect(closed.status).toBe('failed');
      const now = (await tenant(e, slug))!;
      if (slug === 'nk-new') {
        expect(await tenantDigests(e, 'nk-new')).toEqual(src);
        expect(now.schema_name).toBe(left.schema_name);
        expect(await hasConcurrentIndex(e, 'nk-new')).toBe(true);
      } else {
        expect(await databaseThere(e, left.database_name)).toBe(false);
        expect(now.database_name).not.toBe(left.database_name);
        expect(await tenantDigests(e, 'nk-d')).toEqual(backupOfD);
      }
    }
  });

  it('a restore failing after its load committed removes the placement it built and registers nothing (exit 1)', async () => {
    const e = await env('ntfail');
    await addConcurrentIndex(e);
    await e.create([{ slug: 'nf-s', model: 'schema', shard: 'us1' }]);
    await seed(e, 'nf-s', 30, 'f');
    const id = await backupOf(e, 'nf-s');
    // A later migration that fails: the restore loads, then cannot reach head.
    await e.addMigration('0005_broken.sql', 'alter table no_such_table add column x int;');
    const n = await tenantCount(e);
    const r = await e.cli(['restore', id, '--as', 'nf-new', '--json']);
    expect(r.code, r.stderr + r.stdout).toBe(1);
    expect(json(r).result).toMatchObject({ status: 'failed', error: { code: 'RESTORE_FAILED' } });
    expect(json(r).result.error.message).toMatch(/migrating the restored placement failed.*no_such_table/);
    expect(await tenantCount(e)).toBe(n);
    expect(await schemaThere(e, 't_nf_new')).toBe(false);
    expect(await roleThere(e, 'tenant_nf_new')).toBe(false);
    const tracked = await e.q('us1', `schemas_${e.name}`, 'select 1 from tenantctl.schema_migrations where target_schema = $1', [
      't_nf_new',
    ]);
    expect(tracked).toHaveLength(0);
    const op = await e.db.selectFrom('operations').selectAll().where('kind', '=', 'restore').executeTakeFirstOrThrow();
    expect(op.status).toBe('failed');
  });
});

describe('an archive whose migration set is not a prefix of the folder', () => {
  it('a file inserted in the middle after the backup: restore builds exactly the archive set, loads, checks, then applies the inserted file', async () => {
    const e = await env('gap');
    await e.addMigration('0005_workspaces_plan.sql', "alter table workspaces add column plan text not null default 'free';\n");
    await e.create([
      { slug: 'gp-s', model: 'schema', shard: 'us1' },
      { slug: 'gp-d', model: 'database', shard: 'us1' },
    ]);
    for (const s of ['gp-s', 'gp-d']) await seed(e, s, 40, s);
    const [gps, gpd] = await backupsOf(e, ['gp-s', 'gp-d']);
    const ids = { 'gp-s': gps, 'gp-d': gpd };
    const before = { 'gp-s': await tenantDigests(e, 'gp-s'), 'gp-d': await tenantDigests(e, 'gp-d') };
    // Merged later from another branch: numbered before the archive's last file, never applied to it.
    await e.addMigration('0004_workspaces_note.sql', "alter table workspaces add column note text not null default 'mid';\n");
    for (const [slug, as, model] of [
      ['gp-s', 'gp-s2', 'schema'],
      ['gp-d', 'gp-d2', 'database'],
    ] as const) {
      const r = await e.cli(['restore', ids[slug], '--as', as, '--model', model, '--json']);
      expect(r.code, r.stderr + r.stdout).toBe(0);
      const t = (await tenant(e, as))!;
      // The archive's set first (0005's column before 0004's), then the folder's head.
      const cols = await e.q(
        t.shard,
        t.database_name,
        `select column_name from information_schema.columns where table_schema = $1 and table_name = 'workspaces' order by ordinal_position`,
        [t.schema_name],
      );
      expect(cols.map((c) => c.column_name).slice(-2)).toEqual(['plan', 'note']);
      expect(await appliedNames(e, t)).toEqual([
        '0001_workspaces_and_users',
        '0002_projects_and_tasks',
        '0003_comments',
        '0004_workspaces_note',
        '0005_workspaces_plan',
      ]);
      const { workspaces, ...rest } = await tenantDigests(e, as);
      const { workspaces: _w, ...restBefore } = before[slug];
      expect(rest).toEqual(restBefore);
      const ws = await e.q(t.shard, t.database_name, `select note, plan from "${t.schema_name}".workspaces`);
      expect(ws).toEqual([{ note: 'mid', plan: 'free' }]);
      expect(workspaces).toBeDefined();
    }
  });
});
