import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';
import { json, ownMigrateFleet, tenantDigests } from '../helpers/migrate-env.js';
import { seedOwnSchema } from '../helpers/seed.js';

/**
 * A move with the user's own schema (test/fixtures/own-schema): a bigint key named company_id,
 * a root table keyed by its own id, shared reference data without the key that tenant rows
 * reference, an identity column, a sequence a default calls, a trigger of the application's and a
 * partitioned table. Least-privileged shard role.
 */
const { env } = ownMigrateFleet();
const FIXTURES = fileURLToPath(new URL('../fixtures/own-schema', import.meta.url));
const KEY = { column: 'company_id', type: 'bigint' as const, tables: { companies: 'id' }, shared: { plans: 'read' as const } };

it('pool → schema on another shard and back: hashes equal, shared parents checked, identities past the copied ids', async () => {
  const e = await env('mvown', { tenantKey: KEY, migrationsFrom: FIXTURES, files: ['0001_companies.sql'] });
  await e.create([
    { slug: 'own-a', model: 'pool', shard: 'us1' },
    { slug: 'own-b', model: 'pool', shard: 'us1' },
  ]);
  const row = async (slug: string) => e.db.selectFrom('tenants').selectAll().where('slug', '=', slug).executeTakeFirstOrThrow();
  for (const slug of ['own-a', 'own-b']) await seedOwnSchema(e, slug);
  const before = await tenantDigests(e, 'own-a');
  const other = await tenantDigests(e, 'own-b');
  for (const [shard, model] of [
    ['eu1', 'schema'],
    ['us1', 'pool'],
  ]) {
    const r = await e.cli(['move', 'own-a', '--to-shard', shard, '--to-model', model, '--yes', '--json']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(json(r).status).toBe('switched');
    const c = await e.cli(['move', 'complete', 'own-a', '--yes', '--json']);
    expect(c.code, c.stdout + c.stderr).toBe(0);
    expect(await tenantDigests(e, 'own-a')).toEqual(before);
    const t = await row('own-a');
    expect([t.shard, t.model]).toEqual([shard, model]);
    // The identity column, and the ticket sequence its default calls, go on past the copied values (a unique ticket per company).
    await e.q(t.shard, t.database_name, `insert into ${t.schema_name}.campaigns (company_id, title) values ($1, 'after')`, [t.key]);
    // The application's trigger did not fire for the copied campaigns (the digests above), and fires for a new one.
    const counted = `select n::int from ${t.schema_name}.campaign_counts where company_id = $1`;
    expect(await e.q(t.shard, t.database_name, counted, [t.key])).toEqual([{ n: 31 }]);
    await e.q(t.shard, t.database_name, `delete from ${t.schema_name}.campaigns where title = 'after'`);
    await e.q(t.shard, t.database_name, `update ${t.schema_name}.campaign_counts set n = n - 1 where company_id = $1`, [t.key]);
  }
  expect(await tenantDigests(e, 'own-b')).toEqual(other);
});
