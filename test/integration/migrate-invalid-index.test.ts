import { afterAll, describe, expect, it } from 'vitest';
import { json, migrateEnv, type MigrateEnv } from '../helpers/migrate-env.js';
import { sharedFleet } from '../helpers/shared-fleet.js';
import { tenant } from '../helpers/seed.js';

/**
 * A concurrent index build that fails (here: duplicates under a unique index) leaves the index
 * INVALID. The idempotent form the error's hint asks for (`if not exists`) used to skip it on the
 * retry, and the migration was recorded applied with an index that is neither used nor enforced.
 */
const envs: MigrateEnv[] = [];
afterAll(async () => {
  await Promise.all(envs.map((e) => e.close().catch(() => undefined)));
});

const FILE = '0004_users_display_name_unique.sql';

describe('a concurrent index build that failed', () => {
  it('is built again by the retry (its INVALID leftover dropped first), never recorded applied without it', async () => {
    const e = await migrateEnv(sharedFleet(), 'invidx');
    envs.push(e);
    await e.create([{ slug: 'ii-a', model: 'schema', shard: 'us1' }]);
    const t = (await tenant(e, 'ii-a'))!;
    const users = `"${t.schema_name}".users`;
    // The tenant's workspace (keyed by the tenant's key), and two users with one display name.
    const ws = t.key;
    await e.q(t.shard, t.database_name, `insert into "${t.schema_name}".workspaces (id, name) values ($1, 'w')`, [ws]);
    await e.q(
      t.shard,
      t.database_name,
      `insert into ${users} (tenant_id, email, display_name) values ($1, 'a@x.io', 'dup'), ($1, 'b@x.io', 'dup')`,
      [ws],
    );
    await e.addMigration(
      FILE,
      '-- tenantctl:no-transaction\ncreate unique index concurrently if not exists users_display_name_uq on users (tenant_id, display_name);\n',
    );
    const valid = async () =>
      (
        await e.q(
          t.shard,
          t.database_name,
          `select i.indisvalid as v from pg_index i join pg_class c on c.oid = i.indexrelid join pg_namespace n on n.oid = c.relnamespace
            where n.nspname = $1 and c.relname = 'users_display_name_uq'`,
          [t.schema_name],
        )
      ).map((r) => r.v as boolean);
    for (let attempt = 0; attempt < 2; attempt++) {
      const r = await e.cli(['migrate', 'up', '--tenant', 'ii-a', '--json']);
      expect(r.code, r.stdout + r.stderr).toBe(1);
      expect(json(r).results[0]).toMatchObject({
        status: 'failed',
        error: { message: expect.stringMatching(/could not create unique index/) },
      });
      // The second run rebuilt it (and failed on the same duplicate), rather than skip it as there.
      expect(await valid()).toEqual([false]);
      expect(json(await e.cli(['migrate', 'status', '--tenant', 'ii-a', '--json'])).summary).toMatchObject({ upToDate: 0 });
    }
    await e.q(t.shard, t.database_name, `delete from ${users} where email = 'b@x.io'`);
    const fixed = await e.cli(['migrate', 'up', '--tenant', 'ii-a', '--json']);
    expect(fixed.code, fixed.stdout + fixed.stderr).toBe(0);
    expect(await valid()).toEqual([true]);
    await expect(
      e.q(t.shard, t.database_name, `insert into ${users} (tenant_id, email, display_name) values ($1, 'c@x.io', 'dup')`, [ws]),
    ).rejects.toThrow(/duplicate key/);
  });
});

describe('a transactional file with BEGIN/COMMIT of its own', () => {
  it('is refused before anything runs (exit 2, naming the line), never half-committed', async () => {
    const e = await migrateEnv(sharedFleet(), 'txctl');
    envs.push(e);
    await e.create([{ slug: 'tc-a', model: 'schema', shard: 'us1' }]);
    await e.addMigration('0004_c37.sql', 'begin;\nalter table tasks add column c37 int;\ncommit;\nalter table users add column c38 int;\n');
    const r = await e.cli(['migrate', 'up', '--json']);
    expect(r.code, r.stdout + r.stderr).toBe(2);
    expect(json(r).error).toMatchObject({
      code: 'MIGRATION_FILES',
      message: expect.stringMatching(/0004_c37\.sql line 1: BEGIN would end the transaction tenantctl runs the file in/),
    });
    const t = (await tenant(e, 'tc-a'))!;
    const cols = await e.q(
      t.shard,
      t.database_name,
      `select column_name from information_schema.columns where table_schema = $1 and column_name in ('c37', 'c38')`,
      [t.schema_name],
    );
    expect(cols).toEqual([]);
  });
});
