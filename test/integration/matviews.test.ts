import { expect, it } from 'vitest';
import { json, ownMigrateFleet, type MigrateEnv } from '../helpers/migrate-env.js';
import { seed, tenant } from '../helpers/seed.js';

/**
 * A schema or database tenant's materialized views after a move or a restore into a new
 * placement: the migrations make them over empty tables and the copy carries tables only, and
 * the tenant's role cannot refresh them (PostgreSQL 15: the owner only). tenantctl refreshes them
 * before the switch. Least-privileged shard role, the built CLI.
 */
const { env } = ownMigrateFleet();

const counts = async (e: MigrateEnv, slug: string) => {
  const t = (await tenant(e, slug))!;
  const [mv] = await e.q(t.shard, t.database_name, `select coalesce(sum(n), 0)::int as n from "${t.schema_name}".task_counts`);
  const [tasks] = await e.q(t.shard, t.database_name, `select count(*)::int as n from "${t.schema_name}".tasks`);
  return { matview: mv.n, tasks: tasks.n };
};

it('a move into a new placement (offline and online) and a restore --as come with their materialized views filled', async () => {
  const e = await env('mvw');
  await e.addMigration(
    '0004_task_counts.sql',
    'create materialized view task_counts as select project_id, count(*) as n from tasks group by project_id;\n',
  );
  await e.create([{ slug: 'mvw-a', model: 'schema', shard: 'us1' }]);
  await seed(e, 'mvw-a', 40, 'a');
  const t = (await tenant(e, 'mvw-a'))!;
  await e.q(t.shard, t.database_name, `refresh materialized view "${t.schema_name}".task_counts`);
  const before = await counts(e, 'mvw-a');
  expect(before.matview).toBe(before.tasks);
  expect(before.tasks).toBeGreaterThan(0);
  const backup = json(await e.cli(['backup', 'create', 'mvw-a', '--json'])).results[0].backup;
  for (const args of [
    ['--to-shard', 'eu1', '--to-model', 'database'],
    ['--to-shard', 'us1', '--online'],
  ]) {
    const r = await e.cli(['move', 'mvw-a', ...args, '--yes', '--json']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect((await e.cli(['move', 'complete', 'mvw-a', '--yes'])).code).toBe(0);
    expect(await counts(e, 'mvw-a'), args.join(' ')).toEqual(before);
  }
  const restored = await e.cli(['restore', backup, '--as', 'mvw-r', '--json']);
  expect(restored.code, restored.stdout + restored.stderr).toBe(0);
  expect(await counts(e, 'mvw-r')).toEqual(before);
});
