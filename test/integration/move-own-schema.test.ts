import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';
import { json, ownMigrateFleet, tenantDigests, until, withPg } from '../helpers/migrate-env.js';
import { seed, seedOwnSchema } from '../helpers/seed.js';
import { superuserUrl } from '../helpers/test-fleet.js';
import { databaseUrl } from '../../src/fleet/connection-url.js';

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
  // An id the application was given whose row is gone (deleted, or never committed) is not given
  // again after a move: the target's sequences go past what the source's handed out.
  const a = await row('own-a');
  const gone = await e.q(
    a.shard,
    a.database_name,
    `insert into ${a.schema_name}.campaigns (company_id, title) values ($1, 'gone') returning id::int`,
    [a.key],
  );
  await e.q(a.shard, a.database_name, `delete from ${a.schema_name}.campaigns where title = 'gone'`);
  await e.q(a.shard, a.database_name, `update ${a.schema_name}.campaign_counts set n = n - 1 where company_id = $1`, [a.key]);
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
    const after = await e.q(
      t.shard,
      t.database_name,
      `insert into ${t.schema_name}.campaigns (company_id, title) values ($1, 'after') returning id::int`,
      [t.key],
    );
    expect(after[0].id).toBeGreaterThan(gone[0].id);
    // The application's trigger did not fire for the copied campaigns (the digests above), and fires for a new one.
    const counted = `select n::int from ${t.schema_name}.campaign_counts where company_id = $1`;
    expect(await e.q(t.shard, t.database_name, counted, [t.key])).toEqual([{ n: 31 }]);
    await e.q(t.shard, t.database_name, `delete from ${t.schema_name}.campaigns where title = 'after'`);
    await e.q(t.shard, t.database_name, `update ${t.schema_name}.campaign_counts set n = n - 1 where company_id = $1`, [t.key]);
  }
  expect(await tenantDigests(e, 'own-b')).toEqual(other);

  // Online (captured by triggers: the role may not create subscriptions), with the application
  // inserting into and updating a table whose id is GENERATED ALWAYS AS IDENTITY through the URL
  // resolve prints: the replay writes the source's ids (OVERRIDING SYSTEM VALUE) and never SETs
  // them; every write the application saw committed is at the new placement.
  const printed = json(await e.cli(['resolve', 'own-b', '--json'])).url as string;
  const appUrl = printed.replace(':***@', `:${encodeURIComponent(e.config.servingRole.password ?? '')}@`);
  const b = await row('own-b');
  const inserted: string[] = [];
  const updated: string[] = [];
  let stop = false;
  const writer = withPg(appUrl, async (c) => {
    for (let i = 0; !stop; i++) {
      try {
        await c.query(`insert into campaigns (company_id, title) values ($1, $2)`, [b.key, `live-${i}`]);
        inserted.push(`live-${i}`);
        await c.query(`update campaigns set state = 'off' where company_id = $1 and title = $2`, [b.key, `live-${i}`]);
        updated.push(`live-${i}`);
      } catch (err) {
        // Refused while fenced, and at the old placement after the switch: the write did not commit.
        if ((err as { code?: string }).code !== '25006') throw err;
        await new Promise((r) => setTimeout(r, 20));
      }
    }
  });
  await until(async () => inserted.length >= 3);
  const online = await e.cli(['move', 'own-b', '--to-shard', 'eu1', '--online', '--yes', '--json']);
  stop = true;
  await writer;
  expect(online.code, online.stdout + online.stderr).toBe(0);
  const moved = await row('own-b');
  expect(moved.shard).toBe('eu1');
  const there = await e.q(
    moved.shard,
    moved.database_name,
    `select title, state from ${moved.schema_name}.campaigns where company_id = $1`,
    [moved.key],
  );
  const state = new Map(there.map((r) => [r.title as string, r.state as string]));
  expect(inserted.filter((t) => !state.has(t))).toEqual([]);
  expect(updated.filter((t) => state.get(t) !== 'off')).toEqual([]);
  expect(inserted.length).toBeGreaterThan(3);
});

it("an extension a migration created in the first schema tenant's schema outlives that tenant's delete: the others' constraints that use it stay", async () => {
  const e = await env('extown');
  await e.create([
    { slug: 'ex-a', model: 'schema', shard: 'us1' },
    { slug: 'ex-b', model: 'schema', shard: 'us1' },
  ]);
  await e.addMigration(
    '0004_bookings.sql',
    `create extension if not exists btree_gist;
     create table bookings ({{tenant_key_column}} {{tenant_key_type}} not null, id bigint generated by default as identity,
       room text not null, during tstzrange not null, primary key ({{tenant_key_column}}, id),
       constraint bookings_no_overlap exclude using gist (room with =, during with &&));`,
  );
  const up = await e.cli(['migrate', 'up', '--json']);
  expect(up.code, up.stdout + up.stderr).toBe(0);
  const db = `schemas_${e.name}`;
  const where = async () =>
    (await e.q('us1', db, `select extnamespace::regnamespace::text as s from pg_extension where extname = 'btree_gist'`))[0].s;
  // The first tenant migrated holds it (its search_path); the other's constraint uses it from there.
  const holder = await where();
  expect(['t_ex_a', 't_ex_b']).toContain(holder);
  const other = holder === 't_ex_a' ? 'ex-b' : 'ex-a';
  const gone = holder === 't_ex_a' ? 'ex-a' : 'ex-b';
  const schema = `t_${other.replace('-', '_')}`;
  // audit says where it lives and what the other tenants cannot reach.
  const found = json(await e.cli(['audit', '--json'])).findings.filter(
    (f: { check: string }) => f.check === 'schema.extension-in-tenant-schema',
  );
  expect(found).toMatchObject([
    { tenant: gone, object: 'extension btree_gist', fix: expect.stringMatching(/alter extension "btree_gist" set schema public/) },
  ]);
  // A trusted extension's objects belong to the superuser: tenantctl's role cannot move it, so
  // the delete stops before it drops anything, naming what would go with it and the statement.
  const del = await e.cli(['tenant', 'delete', gone, '--yes', '--skip-backup', '--json']);
  expect(del.code, del.stdout + del.stderr).toBe(1);
  expect(del.stdout + del.stderr).toMatch(
    new RegExp(
      `extension btree_gist lives in ${holder}, the schema of tenant ${gone}, and .*${schema}\\.bookings_no_overlap.* nothing was dropped`,
    ),
  );
  expect(del.stdout + del.stderr).toMatch(/alter extension btree_gist set schema public/);
  expect(await where()).toBe(holder);
  await withPg(superuserUrl(databaseUrl(e.config.shards.find((x) => x.name === 'us1')!.url, db)), (c) =>
    c.query('alter extension btree_gist set schema public'),
  );
  const again = await e.cli(['tenant', 'delete', gone, '--yes', '--skip-backup', '--json']);
  expect(again.code, again.stdout + again.stderr).toBe(0);
  expect(await where()).toBe('public');
  const left = await e.q('us1', db, `select conname from pg_constraint where contype = 'x' and connamespace = $1::regnamespace`, [schema]);
  expect(left.map((r) => r.conname)).toEqual(['bookings_no_overlap']);
  const key = (await e.db.selectFrom('tenants').select('key').where('slug', '=', other).executeTakeFirstOrThrow()).key;
  const book = `insert into ${schema}.bookings (tenant_id, room, during) values ($1, 'r1', tstzrange('2026-01-01', '2026-01-02'))`;
  await e.q('us1', db, book, [key]);
  await expect(e.q('us1', db, book, [key])).rejects.toMatchObject({ code: '23P01' });
});

it("a pool's own trigger that names tables unqualified (as migrations run) fires on tenantctl's deletes and loads with the path it was written for", async () => {
  const e = await env('mvtrg');
  // Unqualified, as the shipped migrations write names: migrations run with the pool's schema first on the path.
  await e.addMigration(
    '0004_touch.sql',
    `create function touch_project() returns trigger language plpgsql as $fn$
       begin perform 1 from projects where projects.tenant_id = old.tenant_id limit 1; return old; end $fn$;
     create trigger touch_project after delete on tasks for each row execute function touch_project();`,
  );
  await e.create([
    { slug: 'trg-a', model: 'pool', shard: 'us1' },
    { slug: 'trg-b', model: 'pool', shard: 'us1' },
  ]);
  for (const slug of ['trg-a', 'trg-b']) await seed(e, slug, 5, slug);
  // The source's rows go with move complete; the tenant's with delete (both failed: relation "projects" does not exist).
  const moved = await e.cli(['move', 'trg-a', '--to-shard', 'eu1', '--yes', '--json']);
  expect(moved.code, moved.stdout + moved.stderr).toBe(0);
  const done = await e.cli(['move', 'complete', 'trg-a', '--yes', '--json']);
  expect(done.code, done.stdout + done.stderr).toBe(0);
  const del = await e.cli(['tenant', 'delete', 'trg-b', '--yes', '--skip-backup', '--json']);
  expect(del.code, del.stdout + del.stderr).toBe(0);
  expect(await e.q('us1', `pool_${e.name}`, 'select count(*)::int as n from app.tasks')).toEqual([{ n: 0 }]);
});

it("a table a migration puts outside the tenant's schema: a database tenant's move or backup (whose source database a move drops) is refused, nothing changed; audit names it in every model", async () => {
  const e = await env('mvout');
  await e.create([
    { slug: 'out-d', model: 'database', shard: 'us1' },
    { slug: 'out-s', model: 'schema', shard: 'us1' },
    { slug: 'out-p', model: 'pool', shard: 'us1' },
  ]);
  const row = async (slug: string) => e.db.selectFrom('tenants').selectAll().where('slug', '=', slug).executeTakeFirstOrThrow();
  // Qualified, so it lands outside every target's schema; idempotent, as the schema tenants share one database.
  await e.addMigration(
    '0004_billing.sql',
    `create schema if not exists billing;
     create table if not exists billing.invoices (tenant_id uuid not null, amount int not null);
     grant usage on schema billing to public;
     grant insert on billing.invoices to public;`,
  );
  const up = await e.cli(['migrate', 'up', '--json']);
  expect(up.code, up.stdout + up.stderr).toBe(0);
  const d = await row('out-d');
  const s = await row('out-s');
  await e.q('us1', d.database_name, 'insert into billing.invoices values ($1, 10)', [d.key]);
  // The database tenant's rows there would be dropped with its source database by move complete.
  for (const args of [
    ['move', 'out-d', '--to-shard', 'eu1', '--yes', '--json'],
    ['backup', 'create', 'out-d', '--json'],
  ]) {
    const r = await e.cli(args);
    expect(r.code, `${args.join(' ')}: ${r.stdout}${r.stderr}`).toBe(2);
    expect(r.stdout).toContain('TABLE_OUTSIDE_SCHEMA');
    expect(r.stdout).toContain("billing.invoices is in the tenant's own database, outside its schema app");
    expect(r.stdout).toContain('nothing was changed');
  }
  expect(await row('out-d')).toMatchObject({ shard: 'us1', status: 'active' });
  expect(await e.q('us1', d.database_name, 'select count(*)::int as n from billing.invoices')).toEqual([{ n: 1 }]);
  expect(json(await e.cli(['backup', 'list', '--json'])).backups).toEqual([]);
  // In the databases tenants share the table stays where it is (an audit log its triggers write,
  // say): the schema tenant's backup goes on.
  const shared = await e.cli(['backup', 'create', 'out-s', '--json']);
  expect(shared.code, shared.stdout + shared.stderr).toBe(0);
  // audit names each, in every model, before a nightly backup or a move finds them.
  const found = json(await e.cli(['audit', '--json']))
    .findings.filter((f: { check: string }) => f.check === 'placement.table-outside-schema')
    .map((f: { database: string; tenant: string | null; object: string }) => [f.database, f.tenant, f.object]);
  expect(found).toEqual(
    expect.arrayContaining([
      [d.database_name, 'out-d', 'billing.invoices'],
      [s.database_name, null, 'billing.invoices'],
      [`pool_${e.name}`, null, 'billing.invoices'],
    ]),
  );
  expect(found).toHaveLength(3);
  // A keyed table no tenant may touch, in a database tenants share, is the operator's own.
  await e.q('us1', s.database_name, 'revoke all on billing.invoices from public');
  const after = json(await e.cli(['audit', '--json'])).findings.filter(
    (f: { check: string; database: string }) => f.check === 'placement.table-outside-schema' && f.database === s.database_name,
  );
  expect(after).toEqual([]);
});

it("a schema tenant's rows that carry another key, colliding once the key is written into a pool: the move says which and how to fix it, and is undone", async () => {
  const e = await env('mvkey');
  await e.create([{ slug: 'kx-s', model: 'schema', shard: 'us1' }]);
  const t = await e.db.selectFrom('tenants').selectAll().where('slug', '=', 'kx-s').executeTakeFirstOrThrow();
  // A second workspace (merged in from elsewhere): in the pool both would be the tenant's key.
  const other = '00000000-0000-4000-8000-00000000abcd';
  await e.q(t.shard, t.database_name, `insert into ${t.schema_name}.workspaces (id, name) values ($1, 'own'), ($2, 'merged')`, [
    t.key,
    other,
  ]);
  const before = await tenantDigests(e, 'kx-s');
  const r = await e.cli(['move', 'kx-s', '--to-model', 'pool', '--yes', '--json']);
  expect(r.code, r.stdout + r.stderr).toBe(1);
  const err = json(r).error;
  expect(err.code).toBe('MOVE_FAILED');
  expect(err.message).toMatch(
    new RegExp(
      `rows of ${t.schema_name}\\.workspaces at .* carry id values other than kx-s's key ${t.key}: written as that key in the pool, they collide on workspaces_pkey`,
    ),
  );
  expect(err.hint).toContain(`select * from "${t.schema_name}"."workspaces" where "id" <> '${t.key}'`);
  // Undone: the tenant where it was, its rows as they were, nothing of its key in the pool.
  const now = await e.db.selectFrom('tenants').selectAll().where('slug', '=', 'kx-s').executeTakeFirstOrThrow();
  expect([now.model, now.shard, now.status]).toEqual(['schema', 'us1', 'active']);
  expect(await tenantDigests(e, 'kx-s')).toEqual(before);
  const pool = await e.q(t.shard, 'pool_mvkey', 'select count(*)::int as n from app.workspaces where id = $1', [t.key]);
  expect(pool[0].n).toBe(0);
});
