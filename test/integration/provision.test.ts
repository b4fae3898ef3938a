import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { sql } from 'kysely';
import { statementCounter } from '../helpers/statement-counter.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTenant } from '../../src/provision/create-tenant.js';
import { deleteTenant, setSuspended } from '../../src/provision/lifecycle.js';
import { createTenants } from '../../src/provision/bulk-create.js';
import { getTenant } from '../../src/catalog/tenants.js';
import { UsageError } from '../../src/errors.js';
import { catalogCount, q, shardDbUrl, testDeps } from '../helpers/deps.js';
import { superuserUrl } from '../helpers/test-fleet.js';

let deps: Awaited<ReturnType<typeof testDeps>>;
beforeAll(async () => {
  deps = await testDeps();
});
afterAll(async () => {
  await deps?.close();
});

const admin = (shard: string, db: string) => shardDbUrl(deps.config, shard, db);
const schemaExists = async (shard: string, db: string, schema: string) =>
  (await q(admin(shard, db), 'select 1 from pg_namespace where nspname = $1', [schema])).length > 0;
const roleExists = async (shard: string, role: string) =>
  (await q(admin(shard, 'postgres'), 'select 1 from pg_roles where rolname = $1', [role])).length > 0;
const dbExists = async (shard: string, db: string) =>
  (await q(admin(shard, 'postgres'), 'select 1 from pg_database where datname = $1', [db])).length > 0;

describe('provisioning in each model', () => {
  it('pool: catalog row active, pool target at head, every tenant-scoped table under RLS with both policies', async () => {
    const r = await createTenant(deps, { slug: 'pv-pool-a', model: 'pool', shard: 'us1' });
    expect(r.status).toBe('succeeded');
    const t = await getTenant(deps.db, 'pv-pool-a');
    expect(t).toMatchObject({
      status: 'active',
      model: 'pool',
      database_name: 'tenant_pool',
      schema_name: 'app',
      schema_version: deps.migrations.at(-1)!.id,
    });
    const tables = await q(
      admin('us1', 'tenant_pool'),
      `select c.relname, c.relrowsecurity, c.relforcerowsecurity,
              exists(select 1 from pg_policy p where p.polrelid = c.oid and p.polname = 'tenantctl_isolation') as policy,
              exists(select 1 from pg_policy p where p.polrelid = c.oid and p.polname = 'tenantctl_admin'
                                                 and p.polroles = array[(select oid from pg_roles where rolname = current_user)]) as admin
         from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where n.nspname = 'app' and c.relkind = 'r'`,
    );
    const scoped = tables.filter((x) => x.relname !== 'task_statuses' && x.relname !== 'countries');
    expect(scoped.length).toBeGreaterThanOrEqual(4);
    // tenantctl's role owns the tables: exempt as the owner (no FORCE), the serving role is not.
    for (const row of scoped)
      expect(row, row.relname).toMatchObject({ relrowsecurity: true, relforcerowsecurity: false, policy: true, admin: true });
  });

  it('schema: own schema at head and a role that can use it', async () => {
    const r = await createTenant(deps, { slug: 'pv-schema-a', model: 'schema', shard: 'us2' });
    expect(r.status).toBe('succeeded');
    expect(await schemaExists('us2', 'tenant_schemas', 't_pv_schema_a')).toBe(true);
    expect(await roleExists('us2', 'tenant_pv_schema_a')).toBe(true);
    const applied = await q(
      admin('us2', 'tenant_schemas'),
      'select name from tenantctl.schema_migrations where target_schema = $1 order by name',
      ['t_pv_schema_a'],
    );
    expect(applied.map((x) => x.name)).toEqual(deps.migrations.map((m) => m.id));
  });

  it('database: own database with CONNECT revoked from PUBLIC', async () => {
    const r = await createTenant(deps, { slug: 'pv-db-a', model: 'database', region: 'eu-west' });
    expect(r.status).toBe('succeeded');
    expect(r.shard).toBe('eu1');
    const [acl] = await q(
      admin('eu1', 'postgres'),
      `select has_database_privilege('public', datname, 'CONNECT') as public_connect,
              has_database_privilege('tenant_pv_db_a', datname, 'CONNECT') as role_connect
         from pg_database where datname = 't_pv_db_a'`,
    );
    expect(acl).toEqual({ public_connect: false, role_connect: true });
  });

  it('tier decides the model; residency is enforced', async () => {
    const r = await createTenant(deps, { slug: 'pv-tier', tier: 'enterprise', region: 'eu-west' });
    expect(r.model).toBe('database');
    await expect(createTenant(deps, { slug: 'pv-res', residency: 'eu', region: 'us-east' })).rejects.toMatchObject({ code: 'RESIDENCY' });
    expect(await catalogCount(deps.db, 'pv-res')).toBe(0);
  });
});

describe('bulk onboarding', () => {
  it('creates many tenants of every model on one shard at once (no catalog races between them)', async () => {
    const inputs = [
      ...Array.from({ length: 12 }, (_, i) => ({ slug: `pv-bulk-s${i}`, model: 'schema', shard: 'us1' })),
      ...Array.from({ length: 6 }, (_, i) => ({ slug: `pv-bulk-p${i}`, model: 'pool', shard: 'us1' })),
      ...Array.from({ length: 4 }, (_, i) => ({ slug: `pv-bulk-d${i}`, model: 'database', shard: 'us1' })),
    ];
    const results = await createTenants(deps, inputs, { concurrency: 8 });
    expect(
      results.filter((r) => r.status !== 'succeeded'),
      JSON.stringify(results.filter((r) => r.status !== 'succeeded')),
    ).toEqual([]);
    expect(results.map((r) => r.tenant)).toEqual(inputs.map((i) => i.slug));
  });

  it('a bulk run costs the catalog two statements per tenant plus batches, and the maintenance database no checkout per tenant', async () => {
    // Counted where tenantctl issues them: every catalog statement it compiles (locks and their
    // batches included), every shard checkout by database. The engine's per-row lock, unlock,
    // read, sweep, record start and close made it ten per tenant, and the tier limits' read one
    // maintenance checkout per tenant (which evicted the schemas database's connections).
    const counter = statementCounter();
    const checkouts = new Map<string, number>();
    const fleet = new Proxy(deps.fleet, {
      get(target, p) {
        const v = Reflect.get(target, p, target);
        if (p !== 'withClient' && p !== 'withTransaction') return typeof v === 'function' ? v.bind(target) : v;
        return (shard: string, database: string, fn: unknown) => {
          checkouts.set(database, (checkouts.get(database) ?? 0) + 1);
          return v.call(target, shard, database, fn);
        };
      },
    });
    const n = 24;
    const inputs = Array.from({ length: n }, (_, i) => ({ slug: `pv-cost-${i}`, model: 'schema', shard: 'us1' }));
    const results = await createTenants({ ...deps, db: deps.db.withPlugin(counter.plugin), fleet }, inputs, { concurrency: 4 });
    expect(results.filter((r) => r.status !== 'succeeded')).toEqual([]);
    expect(counter.count / n, `${counter.count} catalog statements for ${n} tenants`).toBeLessThanOrEqual(3);
    // The first rows at once may each look at the maintenance database before one has found the
    // schemas database (a few, however many rows follow); the tier limits took one per row.
    expect(checkouts.get('postgres') ?? 0, JSON.stringify([...checkouts])).toBeLessThan(n / 2);
    // Each still has its own record, closed with the tenant turned active, and its event.
    const slugs = inputs.map((i) => i.slug);
    const { rows } = await sql<{ ops: string[]; events: number }>`
      select array(select status from operations where kind = 'create' and tenant_slug = any(${slugs}::text[])) as ops,
             (select count(*)::int from events where action = 'provisioned' and tenant_slug = any(${slugs}::text[])) as events`.execute(
      deps.db,
    );
    expect(rows[0]).toEqual({ ops: Array(n).fill('succeeded'), events: n });
  });
});

describe('deletes at once', () => {
  it('24 deletes and 24 creates at once on one database all finish (no DELETE_INCOMPLETE "privileges granted to it")', async () => {
    // Each delete revokes its role's CONNECT on the database, each create grants its own: both
    // rewrite one pg_database row. The revokes ran in DROP OWNED, outside the lock the grants
    // take, and lost "tuple concurrently updated" three times running (3 of 48 here).
    const rows = (p: string) => Array.from({ length: 24 }, (_, i) => ({ slug: `pv-rd${p}${i}`, model: 'schema', shard: 'us1' }));
    const [gone, made] = [rows('a'), rows('b')];
    expect((await createTenants(deps, gone, { concurrency: 8 })).filter((r) => r.status !== 'succeeded')).toEqual([]);
    const errors: string[] = [];
    const del = (slugs: { slug: string }[]) =>
      slugs.map((t) => deleteTenant({ ...deps, command: 'test' }, t.slug, { skipBackup: true }).catch((e) => errors.push(String(e))));
    const created = createTenants(deps, made, { concurrency: 8 });
    await Promise.all([...del(gone), created]);
    errors.push(...(await created).filter((r) => r.status !== 'succeeded').map((r) => JSON.stringify(r)));
    await Promise.all(del(made));
    expect(errors).toEqual([]);
  });
});

describe('isolation between tenants', () => {
  beforeAll(async () => {
    for (const slug of ['pv-iso-a', 'pv-iso-b']) await createTenant(deps, { slug, model: 'schema', shard: 'us1' });
    for (const slug of ['pv-isodb-a', 'pv-isodb-b']) await createTenant(deps, { slug, model: 'database', shard: 'us1' });
  });

  it("the tenant role of A cannot read B's schema", async () => {
    // SET ROLE needs membership in the role: the superuser has it, tenantctl's role does not.
    const url = superuserUrl(admin('us1', 'tenant_schemas'));
    // Sanity: A can read its own.
    await q(url, 'set role tenant_pv_iso_a; select count(*) from t_pv_iso_a.workspaces');
    await expect(q(url, 'set role tenant_pv_iso_a; select count(*) from t_pv_iso_b.workspaces')).rejects.toMatchObject({ code: '42501' });
  });

  it("the tenant role of A cannot connect to B's database", async () => {
    await q(admin('us1', 'postgres'), `alter role tenant_pv_isodb_a password 'a-secret'`);
    const asA = (db: string) => shardDbUrl(deps.config, 'us1', db, { name: 'tenant_pv_isodb_a', password: 'a-secret' });
    await expect(q(asA('t_pv_isodb_a'), 'select 1 as ok')).resolves.toEqual([{ ok: 1 }]);
    await expect(q(asA('t_pv_isodb_b'), 'select 1')).rejects.toMatchObject({ code: '42501' });
  });

  it("pool rows of A are invisible under B's setting, connected as the serving role", async () => {
    await createTenant(deps, { slug: 'pv-rls-a', model: 'pool', shard: 'us2' });
    await createTenant(deps, { slug: 'pv-rls-b', model: 'pool', shard: 'us2' });
    const a = await getTenant(deps.db, 'pv-rls-a');
    const b = await getTenant(deps.db, 'pv-rls-b');
    const su = admin('us2', 'tenant_pool');
    await q(su, 'insert into app.workspaces (id, name) values ($1, $2), ($3, $4)', [a.key, 'A', b.key, 'B']);
    const serving = shardDbUrl(deps.config, 'us2', 'tenant_pool', {
      name: deps.config.servingRole.name,
      password: deps.config.servingRole.password!,
    });
    const c = new pg.Client({ connectionString: serving });
    await c.connect();
    try {
      const as = async (key: string | null) => {
        await c.query('select set_config($1, $2, false)', [deps.config.rls.setting, key ?? '']);
        return (await c.query('select name from app.workspaces order by name')).rows.map((r) => r.name);
      };
      expect(await as(b.key)).toEqual(['B']);
      expect(await as(a.key)).toEqual(['A']);
      // B cannot write a row claiming to be A.
      await c.query('select set_config($1, $2, false)', [deps.config.rls.setting, b.key]);
      await expect(c.query('update app.workspaces set name = $1 where id = $2 returning id', ['hijack', a.key])).resolves.toMatchObject({
        rowCount: 0,
      });
      await expect(c.query('insert into app.workspaces (id, name) values ($1, $2)', [randomUUID(), 'forged'])).rejects.toMatchObject({
        code: '42501',
      });
    } finally {
      await c.end();
    }
  });
});

describe('bad input and failures', () => {
  const hostile = [
    'Acme',
    'has space',
    "quote'",
    'semi;colon',
    'x; drop table tenants; --',
    '1leading',
    'a'.repeat(41),
    'public',
    'pg-catalog',
    'information_schema',
    '',
  ];

  it.each(hostile)('refuses slug %j with nothing created', async (slug) => {
    await expect(createTenant(deps, { slug, model: 'schema', shard: 'us1' })).rejects.toBeInstanceOf(UsageError);
    expect(await catalogCount(deps.db, slug)).toBe(0);
  });

  it('refuses unknown region, shard, tier and model with exit-2 errors', async () => {
    for (const input of [{ region: 'mars' }, { shard: 'zz9' }, { tier: 'platinum' }, { model: 'cluster' }]) {
      const err = await createTenant(deps, { slug: 'pv-unknown', ...input }).catch((e) => e);
      expect(err).toBeInstanceOf(UsageError);
      expect(err.exitCode).toBe(2);
    }
    expect(await catalogCount(deps.db, 'pv-unknown')).toBe(0);
  });

  it('refuses an existing slug', async () => {
    await createTenant(deps, { slug: 'pv-dup', model: 'pool', shard: 'us1' });
    await expect(createTenant(deps, { slug: 'pv-dup', model: 'pool' })).rejects.toMatchObject({ code: 'TENANT_EXISTS' });
    // Nothing happened to pv-dup: its history says it was provisioned, not that a create failed.
    const events = await deps.db.selectFrom('events').select(['action']).where('tenant_slug', '=', 'pv-dup').orderBy('id').execute();
    expect(events.map((e) => e.action)).toEqual(['provisioned']);
  });

  it.each(['schema', 'database'] as const)(
    '%s: an injected failure rolls back the placement and marks the tenant failed; re-run converges',
    async (model) => {
      const slug = `pv-fail-${model}`;
      const ident = slug.replace(/-/g, '_');
      const r = await createTenant({ ...deps, failAfter: 'migrated' }, { slug, model, shard: 'us2' });
      expect(r.status).toBe('failed');
      expect((await getTenant(deps.db, slug)).status).toBe('failed');
      if (model === 'schema') expect(await schemaExists('us2', 'tenant_schemas', `t_${ident}`)).toBe(false);
      else expect(await dbExists('us2', `t_${ident}`)).toBe(false);
      expect(await roleExists('us2', `tenant_${ident}`)).toBe(false);
      const again = await createTenant(deps, { slug });
      expect(again).toMatchObject({ status: 'succeeded', resumed: true });
      expect((await getTenant(deps.db, slug)).status).toBe('active');
    },
  );

  it.each(['prepared', 'migrated'])(
    'schema: a failure after %s leaves nothing in the tenant database even without undo (one transaction)',
    async (step) => {
      const slug = `pv-atomic-${step}`;
      const ident = slug.replace(/-/g, '_');
      const r = await createTenant({ ...deps, failAfter: step, skipUndo: true }, { slug, model: 'schema', shard: 'us2' });
      expect(r.status).toBe('failed');
      expect(await schemaExists('us2', 'tenant_schemas', `t_${ident}`)).toBe(false);
      expect(await roleExists('us2', `tenant_${ident}`)).toBe(false);
      const tracked = await q(admin('us2', 'tenant_schemas'), 'select name from tenantctl.schema_migrations where target_schema = $1', [
        `t_${ident}`,
      ]);
      expect(tracked).toEqual([]);
      const again = await createTenant(deps, { slug });
      expect(again).toMatchObject({ status: 'succeeded', resumed: true });
      const applied = await q(
        admin('us2', 'tenant_schemas'),
        'select name from tenantctl.schema_migrations where target_schema = $1 order by name',
        [`t_${ident}`],
      );
      expect(applied.map((x) => x.name)).toEqual(deps.migrations.map((m) => m.id));
    },
  );

  it('database: a failure after migrated leaves the new database empty even without undo (one transaction inside it)', async () => {
    const slug = 'pv-atomic-db';
    const r = await createTenant({ ...deps, failAfter: 'migrated', skipUndo: true }, { slug, model: 'database', shard: 'us2' });
    expect(r.status).toBe('failed');
    // CREATE DATABASE cannot be in a transaction: the database (and role) stay, empty.
    expect(await dbExists('us2', 't_pv_atomic_db')).toBe(true);
    expect(await schemaExists('us2', 't_pv_atomic_db', 'app')).toBe(false);
    expect(await q(admin('us2', 't_pv_atomic_db'), 'select name from tenantctl.schema_migrations')).toEqual([]);
    const again = await createTenant(deps, { slug });
    expect(again).toMatchObject({ status: 'succeeded', resumed: true });
    expect(await schemaExists('us2', 't_pv_atomic_db', 'app')).toBe(true);
  });

  it('suspend, resume and delete', async () => {
    await createTenant(deps, { slug: 'pv-life', model: 'schema', shard: 'us1' });
    expect((await setSuspended({ ...deps, command: 'test' }, 'pv-life', true)).tenant.status).toBe('suspended');
    const [r1] = await q(admin('us1', 'postgres'), `select rolcanlogin from pg_roles where rolname = 'tenant_pv_life'`);
    expect(r1.rolcanlogin).toBe(false);
    expect((await setSuspended({ ...deps, command: 'test' }, 'pv-life', false)).tenant.status).toBe('active');
    // A final backup is taken by default before the delete (issue 9).
    const gone = await deleteTenant({ ...deps, command: 'test' }, 'pv-life');
    expect(gone.finalBackup).toMatch(/^pv-life\.\d{8}T\d{9}Z$/);
    expect(await catalogCount(deps.db, 'pv-life')).toBe(0);
    expect(await schemaExists('us1', 'tenant_schemas', 't_pv_life')).toBe(false);
    expect(await roleExists('us1', 'tenant_pv_life')).toBe(false);
    const events = await deps.db.selectFrom('events').select(['action']).where('tenant_slug', '=', 'pv-life').orderBy('id').execute();
    expect(events.map((e) => e.action)).toEqual(['provisioned', 'suspended', 'resumed', 'backed up', 'deleted']);
  });

  it('deleting a pool tenant removes only its rows', async () => {
    await createTenant(deps, { slug: 'pv-pdel-a', model: 'pool', shard: 'us1' });
    await createTenant(deps, { slug: 'pv-pdel-b', model: 'pool', shard: 'us1' });
    const a = await getTenant(deps.db, 'pv-pdel-a');
    const b = await getTenant(deps.db, 'pv-pdel-b');
    const su = admin('us1', 'tenant_pool');
    await q(su, 'insert into app.workspaces (id, name) values ($1, $2), ($3, $4)', [a.key, 'A', b.key, 'B']);
    await deleteTenant({ ...deps, command: 'test' }, 'pv-pdel-a');
    const left = await q(su, 'select id::text from app.workspaces where id = any($1::uuid[])', [[a.key, b.key]]);
    expect(left.map((r) => r.id)).toEqual([b.key]);
  });
});
