import { afterAll, beforeAll, expect, it } from 'vitest';
import { drivers } from '../../src/placement/drivers.js';
import { tenantRoleName } from '../../src/placement/naming.js';
import { testDeps } from '../helpers/deps.js';

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
