import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stopCluster } from '../../src/dev/cluster.js';
import { shardDataDir } from '../../src/dev/fleet.js';
import { json, migrateEnv, type MigrateEnv } from '../helpers/migrate-env.js';
import { startTestFleet, type TestFleet } from '../helpers/test-fleet.js';

/**
 * A stopped shard (issue 7, item 5): us2 of a private 3-shard fleet (us-east: us1 with the
 * catalog, us2; eu-west: eu1) holds tenants, then is stopped. Placement passes over it, commands
 * on its tenants change nothing and exit 2, and `migrate up` goes on with the other shards.
 */
let fleet: TestFleet;
let e: MigrateEnv;

beforeAll(async () => {
  fleet = await startTestFleet({ shards: 3 });
  e = await migrateEnv(fleet, 'down');
  await e.create([
    { slug: 'down-pool', model: 'pool', shard: 'us2' },
    { slug: 'down-s', model: 'schema', shard: 'us2' },
    { slug: 'down-d', model: 'database', shard: 'us2' },
    { slug: 'up-pool', model: 'pool', shard: 'us1' },
    { slug: 'up-s1', model: 'schema', shard: 'us1' },
    { slug: 'up-s2', model: 'schema', shard: 'us1' },
  ]);
  // One more on us1: us2 (3 tenants) is the least-loaded shard of us-east, so placement would pick it first.
  await e.create([{ slug: 'up-s3', model: 'schema', shard: 'us1' }]);
  await stopCluster(shardDataDir(fleet.config, fleet.config.shards.find((s) => s.name === 'us2')!));
}, 120_000);
afterAll(async () => {
  await e?.close();
  await fleet?.stop();
});

const row = (slug: string) => e.db.selectFrom('tenants').selectAll().where('slug', '=', slug).executeTakeFirst();

describe('a stopped shard', () => {
  it('placement passes over it for the next least-loaded shard of the region; exit 2 when none answers', async () => {
    const r = await e.cli(['tenant', 'create', 'placed', '--model', 'schema', '--region', 'us-east', '--json']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(json(r).results[0].shard).toBe('us1');
    const named = await e.cli(['tenant', 'create', 'placed-2', '--model', 'schema', '--shard', 'us2', '--json']);
    expect(named.code).toBe(2);
    expect(json(named).error.code).toBe('UNREACHABLE');
    expect(await row('placed-2')).toBeUndefined();
  });

  it('delete, suspend and resume of a tenant on it change nothing and exit 2', async () => {
    for (const slug of ['down-s', 'down-d', 'down-pool']) {
      const d = await e.cli(['tenant', 'delete', slug, '--yes', '--json']);
      expect(d.code, d.stdout).toBe(2);
      expect(json(d).error.message).toContain('shard us2');
      expect(await row(slug)).toMatchObject({ status: 'active' });
    }
    const s = await e.cli(['tenant', 'suspend', 'down-s', '--json']);
    expect(s.code, s.stdout).toBe(2);
    expect(await row('down-s')).toMatchObject({ status: 'active' });
  });

  it('migrate up reports its targets unreachable, naming each database, and migrates the other shards (exit 1)', async () => {
    await e.addMigration('0100_more.sql', 'create table more_things ({{tenant_key_column}} {{tenant_key_type}}, id int);\n');
    const r = await e.cli(['migrate', 'up', '--json']);
    expect(r.code, r.stderr).toBe(1);
    const doc = json(r);
    const by = (slug: string) => doc.results.find((x: any) => x.tenant === slug);
    for (const slug of ['up-pool', 'up-s1', 'up-s2', 'up-s3'])
      expect(by(slug), slug).toMatchObject({ status: 'succeeded', applied: ['0100_more'] });
    expect(by('down-pool')).toMatchObject({ status: 'failed', error: { code: 'UNREACHABLE' } });
    expect(by('down-pool').error.message).toContain(`/pool_down)`);
    expect(by('down-s').error.message).toContain(`/schemas_down)`);
    expect(by('down-d').error.message).toContain(`/t_down_d)`);
    expect(doc.targets).toMatchObject({ unreachable: 3, failed: 3, notRun: 0 });
    expect(doc.stopped).toBeUndefined();
  });
});
