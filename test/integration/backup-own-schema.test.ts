import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';
import { json, ownMigrateFleet, tenantDigests } from '../helpers/migrate-env.js';
import { seedOwnSchema } from '../helpers/seed.js';

/**
 * Backup and restore with the user's own schema (test/fixtures/own-schema): a bigint key named
 * company_id, a root table keyed by its own id, shared reference data without the key, an
 * identity column and a partitioned table (which a fresh placement's frozen load must leave to
 * a plain COPY: COPY FREEZE refuses partitioned tables). Least-privileged shard role.
 */
const { env } = ownMigrateFleet();
const FIXTURES = fileURLToPath(new URL('../fixtures/own-schema', import.meta.url));
const KEY = { column: 'company_id', type: 'bigint' as const, tables: { companies: 'id' }, shared: { plans: 'read' as const } };

it('pool and schema tenants: backup, clone into the other model, same hashes; identities go on past the restored ids', async () => {
  const e = await env('bkown', { tenantKey: KEY, migrationsFrom: FIXTURES });
  await e.create([
    { slug: 'own-p', model: 'pool', shard: 'us1' },
    { slug: 'own-s', model: 'schema', shard: 'us1' },
  ]);
  const row = async (slug: string) => e.db.selectFrom('tenants').selectAll().where('slug', '=', slug).executeTakeFirstOrThrow();
  for (const slug of ['own-p', 'own-s']) await seedOwnSchema(e, slug);
  for (const [slug, clone, model] of [
    ['own-p', 'own-p2', 'schema'],
    ['own-s', 'own-s2', 'pool'],
    ['own-s', 'own-s3', 'database'],
  ] as const) {
    const before = await tenantDigests(e, slug);
    expect(Object.keys(before)).toContain('clicks');
    const b = await e.cli(['backup', 'create', slug, '--json']);
    expect(b.code, b.stdout + b.stderr).toBe(0);
    const id = json(b).results[0].backup;
    if (slug === 'own-s') {
      // pg_dump sends a partitioned table's rows per partition: its file comes from a COPY.
      const { readFile } = await import('node:fs/promises');
      const { join } = await import('node:path');
      const { storageFor } = await import('../../src/backup/regions.js');
      const st = storageFor(e.config, 'us-east');
      const m = JSON.parse(await readFile(join(st.location, slug, id, 'manifest.json'), 'utf8'));
      const from = Object.fromEntries(m.tables.map((t: { table: string; from: string }) => [t.table, t.from]));
      expect(from).toMatchObject({ clicks: 'copy', campaigns: 'pg_dump', companies: 'pg_dump' });
    }
    const r = await e.cli(['restore', id, '--as', clone, '--model', model, '--json']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(json(r).result.status).toBe('succeeded');
    expect(await tenantDigests(e, clone)).toEqual(before);
    const t = await row(clone);
    expect(t.model).toBe(model);
    await e.q(t.shard, t.database_name, `insert into ${t.schema_name}.campaigns (company_id, title) values ($1, 'after')`, [t.key]);
    // The application's trigger did not fire for the restored campaigns (the digests above), and fires for a new one.
    expect(
      await e.q(t.shard, t.database_name, `select n::int from ${t.schema_name}.campaign_counts where company_id = $1`, [t.key]),
    ).toEqual([{ n: 31 }]);
    await e.q(
      t.shard,
      t.database_name,
      `insert into ${t.schema_name}.clicks (company_id, at, campaign) values ($1, date '2027-03-01', 1)`,
      [t.key],
    );
  }

  // restore --replace: the ids the application was given after the backup (rows deleted since,
  // or kept only in the safety backup) are not given again.
  const s = await row('own-s');
  const b = await e.cli(['backup', 'create', 'own-s', '--json']);
  expect(b.code, b.stdout + b.stderr).toBe(0);
  // As the application does: its trigger's tables by the placement's search_path.
  const campaign = (title: string) =>
    e.q(
      s.shard,
      s.database_name,
      `with _ as (select set_config('search_path', $3, true)) insert into ${s.schema_name}.campaigns (company_id, title) select $1, $2 from _ returning id::int`,
      [s.key, title, s.schema_name],
    );
  const given = (await campaign('given'))[0].id;
  await campaign('given');
  const last = (await campaign('given'))[0].id;
  expect(last).toBe(given + 2);
  await e.q(s.shard, s.database_name, `delete from ${s.schema_name}.campaigns where title = 'given'`);
  const r = await e.cli(['restore', json(b).results[0].backup, '--replace', '--yes', '--json']);
  expect(r.code, r.stdout + r.stderr).toBe(0);
  expect((await campaign('after the replace'))[0].id).toBeGreaterThan(last);
});
