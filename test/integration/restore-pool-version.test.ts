import { describe, expect, it } from 'vitest';
import { json, ownMigrateFleet, tenantCount, tenantDigests, type MigrateEnv } from '../helpers/migrate-env.js';
import { seed, tenant } from '../helpers/seed.js';

/**
 * A pool restore never changes the pool's other tenants (issue 16, item 6): it loads at the pool
 * target's version and never migrates the shared target; a backup the pool's version cannot take
 * is refused (exit 2) naming both versions and the command that makes it possible. Private fleet
 * (fixture migrations), built CLI, the least-privileged shard role.
 */
const { env } = ownMigrateFleet();

const MIG4 = '0004_tasks_estimate.sql';
const addMig4 = (e: MigrateEnv) => e.addMigration(MIG4, 'alter table tasks add column estimate integer;\n');

const poolApplied = async (e: MigrateEnv) =>
  (await e.q('us1', `pool_${e.name}`, `select name from tenantctl.schema_migrations where target_schema = 'app' order by name`)).map(
    (r) => r.name,
  );
const hasEstimate = async (e: MigrateEnv) =>
  (
    await e.q(
      'us1',
      `pool_${e.name}`,
      `select 1 from information_schema.columns where table_schema = 'app' and table_name = 'tasks' and column_name = 'estimate'`,
    )
  ).length > 0;

async function backupOf(e: MigrateEnv, slug: string): Promise<string> {
  const r = await e.cli(['backup', 'create', slug, '--json']);
  expect(r.code, r.stderr + r.stdout).toBe(0);
  return json(r).results[0].backup;
}

/** The pool target's version as `migrate status` reports it, and the catalog's versions of its tenants. */
async function versions(e: MigrateEnv): Promise<{ status: string | null; catalog: Record<string, string | null> }> {
  const st = json(await e.cli(['migrate', 'status', '--model', 'pool', '--json']));
  const target = st.targets.find((t: any) => t.model === 'pool' && t.shard === 'us1');
  const list = json(await e.cli(['tenant', 'list', '--model', 'pool', '--json']));
  const rows: any[] = list.tenants ?? list;
  return { status: target.version, catalog: Object.fromEntries(rows.map((t) => [t.slug, t.schemaVersion])) };
}

describe('pool restore at the pool version', () => {
  it("restores into a pool one migration behind the folder without migrating it: other tenants' rows and the pool's version unchanged, tenant list and migrate status agree", async () => {
    const e = await env('rpv');
    await e.create([
      { slug: 'pv-a', model: 'pool', shard: 'us1' },
      { slug: 'pv-b', model: 'pool', shard: 'us1' },
    ]);
    await seed(e, 'pv-a', 60, 'a');
    await seed(e, 'pv-b', 60, 'b');
    const id = await backupOf(e, 'pv-a');
    const source = await tenantDigests(e, 'pv-a');
    // The folder moves on; the pool is not migrated (one migration behind).
    await addMig4(e);
    const appliedBefore = await poolApplied(e);
    const otherBefore = await tenantDigests(e, 'pv-b');

    const r = await e.cli(['restore', id, '--as', 'mig3', '--json']);
    expect(r.code, r.stderr + r.stdout).toBe(0);
    expect(json(r).result).toMatchObject({ status: 'succeeded', tenant: 'mig3', model: 'pool' });

    expect(await poolApplied(e)).toEqual(appliedBefore);
    expect(appliedBefore.at(-1)).toBe('0003_comments');
    expect(await hasEstimate(e)).toBe(false);
    expect(await tenantDigests(e, 'pv-b')).toEqual(otherBefore);
    expect(await tenantDigests(e, 'mig3')).toEqual(source);
    // No migrate run was started behind the operator's back, and both views say 0003.
    expect(await e.runs()).toHaveLength(0);
    const v = await versions(e);
    expect(v.status).toBe('0003_comments');
    expect(v.catalog).toEqual({ 'pv-a': '0003_comments', 'pv-b': '0003_comments', mig3: '0003_comments' });
  });

  it('refuses a backup newer than the pool (exit 2, naming both versions and the migrate up that makes it possible, nothing changed); after that migrate up it restores, and an older backup is staged up to the pool', async () => {
    const e = await env('rpvn');
    await e.create([{ slug: 'pn-a', model: 'pool', shard: 'us1' }]);
    await seed(e, 'pn-a', 40, 'a');
    const old = await backupOf(e, 'pn-a');
    const oldDigests = await tenantDigests(e, 'pn-a');
    await addMig4(e);
    // A schema tenant made now is at 0004; its backup is newer than the pool (at 0003).
    await e.create([{ slug: 'pn-s', model: 'schema', shard: 'us1' }]);
    await seed(e, 'pn-s', 40, 's');
    const newer = await backupOf(e, 'pn-s');
    const newerDigests = await tenantDigests(e, 'pn-s');
    const appliedBefore = await poolApplied(e);
    const live = await tenantDigests(e, 'pn-a');
    const n = await tenantCount(e);

    const r = await e.cli(['restore', newer, '--as', 'pn-new', '--model', 'pool', '--shard', 'us1', '--json']);
    expect(r.code, r.stderr + r.stdout).toBe(2);
    const err = json(r).error;
    expect(err.code).toBe('POOL_VERSION');
    expect(err.message).toContain(`backup ${newer} is at migration version 0004_tasks_estimate`);
    expect(err.message).toContain(`the pool us1/pool_rpvn/app is at 0003_comments`);
    expect(err.hint).toContain('tenantctl migrate up --shard us1 --model pool');
    expect(await poolApplied(e)).toEqual(appliedBefore);
    expect(await hasEstimate(e)).toBe(false);
    expect(await tenantDigests(e, 'pn-a')).toEqual(live);
    expect(await tenantCount(e)).toBe(n);
    expect(await e.db.selectFrom('operations').select('id').where('kind', '=', 'restore').execute()).toHaveLength(0);

    // The command it names makes it possible.
    const up = await e.cli(['migrate', 'up', '--shard', 'us1', '--model', 'pool', '--json']);
    expect(up.code, up.stderr + up.stdout).toBe(0);
    const ok = await e.cli(['restore', newer, '--as', 'pn-new', '--model', 'pool', '--shard', 'us1', '--json']);
    expect(ok.code, ok.stderr + ok.stdout).toBe(0);
    expect(await tenantDigests(e, 'pn-new')).toEqual(newerDigests);
    // A backup older than the pool goes through the staging schema, migrated up to the pool's version.
    const afterUp = await poolApplied(e);
    const older = await e.cli(['restore', old, '--as', 'pn-old', '--json']);
    expect(older.code, older.stderr + older.stdout).toBe(0);
    // Every table but tasks hashes as before (tasks gained a column, null in the restored rows).
    const { tasks: _t, ...oldRest } = oldDigests;
    const { tasks: _r, ...restored } = await tenantDigests(e, 'pn-old');
    expect(restored).toEqual(oldRest);
    expect((await tenant(e, 'pn-old'))!.schema_version).toBe('0004_tasks_estimate');
    expect(await poolApplied(e)).toEqual(afterUp);
  });
});

describe('an older backup staged up to the pool, with types of its own', () => {
  it('an enum (and an array of it) and a GENERATED ALWAYS identity come back as they were (staging has its own enum type; identity values are kept)', async () => {
    const e = await env('rpve');
    await e.addMigration(
      '0004_labels.sql',
      `create type label_kind as enum ('bug', 'feature');
create table labels ({{tenant_key_column}} {{tenant_key_type}} not null, id bigint generated always as identity,
  kind label_kind not null, also label_kind[], primary key ({{tenant_key_column}}, id));\n`,
    );
    await e.create([{ slug: 'pe-a', model: 'pool', shard: 'us1' }]);
    await seed(e, 'pe-a', 10, 'a');
    const key = (await tenant(e, 'pe-a'))!.key;
    await e.q(
      'us1',
      `pool_${e.name}`,
      `begin; select set_config('app.tenant_id', '${key}', true);
       insert into app.labels (tenant_id, kind, also) values ('${key}', 'bug', '{feature,bug}'), ('${key}', 'feature', null); commit;`,
    );
    const old = await backupOf(e, 'pe-a');
    const labels = (k: string) =>
      e.q('us1', `pool_${e.name}`, `select id, kind::text, also::text from app.labels where tenant_id = $1 order by id`, [k]);
    const before = await labels(key);
    expect(before).toHaveLength(2);
    // The pool moves on: the backup is older than the pool, so its rows are staged and migrated up.
    await e.addMigration('0005_more.sql', 'alter table tasks add column more_at timestamptz;\n');
    expect((await e.cli(['migrate', 'up'])).code).toBe(0);
    const r = await e.cli(['restore', old, '--as', 'pe-old', '--json']);
    expect(r.code, r.stderr + r.stdout).toBe(0);
    expect(await labels((await tenant(e, 'pe-old'))!.key)).toEqual(before);
  });
});
