import { afterAll, beforeAll, expect, it } from 'vitest';
import { drivers } from '../../src/placement/drivers.js';
import { tenantRoleName } from '../../src/placement/naming.js';
import { dropDatabase, ensureDatabase } from '../../src/placement/databases.js';
import { q, shardDbUrl, testDeps } from '../helpers/deps.js';
import { superuserUrl } from '../helpers/test-fleet.js';

let deps: Awaited<ReturnType<typeof testDeps>>;
beforeAll(async () => {
  deps = await testDeps();
});
afterAll(async () => {
  await deps?.close();
});

it('a schema placement is removed even when REVOKE CONNECT fails (its role is gone): the drop is not rolled back with it', async () => {
  const shard = deps.config.shards[0];
  const slug = `rm-norole-${process.pid}`;
  const schema = `t_rm_norole_${process.pid}`;
  // A shared database of its own (the shared fleet may not have made tenant_schemas yet).
  const database = `rm_norole_${process.pid}`;
  await deps.fleet.withClient(shard.name, 'postgres', (c) => c.query(`create database ${database}`));
  await deps.fleet.withClient(shard.name, database, async (c) => {
    await c.query(`create schema ${schema}`);
    await c.query(`create table ${schema}.t (id int)`);
    // No role t_<slug>: REVOKE CONNECT ... FROM it fails with "role does not exist".
    expect((await c.query('select 1 from pg_roles where rolname = $1', [tenantRoleName(slug)])).rowCount).toBe(0);
  });
  await drivers.schema.removeKeepingRole(
    deps.fleet,
    deps.config,
    { slug, key: 'k', model: 'schema', shard: shard.name, database_name: database, schema_name: schema },
    { roleStaysInDatabase: false },
  );
  const left = await deps.fleet.withClient(shard.name, database, (c) => c.query('select 1 from pg_namespace where nspname = $1', [schema]));
  expect(left.rowCount).toBe(0);
});

it('a database is dropped while an autovacuum worker is in it (WITH (FORCE) refuses a process of no role to a shard role that is not a superuser)', async () => {
  const shard = deps.config.shards[0];
  const database = `rm_autovac_${process.pid}`;
  const su = superuserUrl(shardDbUrl(deps.config, shard.name, 'postgres'));
  // Autovacuum wakes every minute by default: every second for this test, and back in `finally`.
  await q(su, 'alter system set autovacuum_naptime = 1');
  await q(su, 'select pg_reload_conf()');
  try {
    await ensureDatabase(deps.fleet, shard.name, database);
    await deps.fleet.withClient(shard.name, database, async (c) => {
      // A vacuum that sleeps 100 ms for every page it reads: the worker stays for the drop.
      await c.query(`create table t (x int) with (autovacuum_vacuum_cost_delay = 100, autovacuum_vacuum_cost_limit = 1,
                       autovacuum_vacuum_threshold = 0, autovacuum_vacuum_scale_factor = 0, autovacuum_analyze_threshold = 1000000000)`);
      await c.query('insert into t select generate_series(1, 100000)');
      await c.query('delete from t');
    });
    const inside = async () =>
      (await q(su, `select 1 from pg_stat_activity where datname = $1 and backend_type = 'autovacuum worker'`, [database])).length;
    for (let i = 0; i < 300 && (await inside()) === 0; i++) await new Promise((r) => setTimeout(r, 100));
    expect(await inside()).toBe(1);
    await dropDatabase(deps.fleet, shard.name, database);
    expect(await q(su, 'select 1 from pg_database where datname = $1', [database])).toHaveLength(0);
  } finally {
    await q(su, 'alter system reset autovacuum_naptime');
    await q(su, 'select pg_reload_conf()');
    await q(su, `drop database if exists ${database} with (force)`);
  }
});
