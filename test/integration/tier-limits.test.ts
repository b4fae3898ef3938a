import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeFile } from 'node:fs/promises';
import pg from 'pg';
import { parseDocument } from 'yaml';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { createViaFile } from '../helpers/create-file.js';
import { json, migrateEnv, tenantDigests, type MigrateEnv } from '../helpers/migrate-env.js';
import { ok, setTiers } from '../helpers/tiers.js';
import { seedOwnSchema, tenant } from '../helpers/seed.js';
import { superuserUrl, type TestFleet } from '../helpers/test-fleet.js';

/**
 * Issue 19 on the shared fleet (least-privileged shard role), with the user's own schema
 * (test/fixtures/own-schema: a bigint key, a partitioned table, shared reference data). Limits
 * are tested through the tenant's application connection, the URL `resolve` prints; and as an
 * adversary: what a tenant role can and cannot change about its own limits.
 */
const configFile = inject('fleetConfigFile');
const shared = { config: loadConfig({ file: configFile }), configFile } as TestFleet;
const FIXTURES = fileURLToPath(new URL('../fixtures/own-schema', import.meta.url));
const KEY = { column: 'company_id', type: 'bigint' as const, tables: { companies: 'id' }, shared: { plans: 'read' as const } };
const TIERS = {
  free: { model: 'pool', statementTimeout: '300ms', lockTimeout: '1s', workMem: '2MB', quotas: { connections: 5 } },
  tight: {
    model: 'schema',
    connectionLimit: 2,
    statementTimeout: '300ms',
    lockTimeout: '1s',
    tempFileLimit: '1MB',
    quotas: { rows: 10, connections: 1 },
  },
  roomy: { model: 'schema', connectionLimit: 10, statementTimeout: '1min', quotas: { storage: '1GB' } },
  big: { model: 'database', connectionLimit: 4, statementTimeout: '2s' },
};
const envs: MigrateEnv[] = [];
afterAll(async () => {
  await Promise.all(envs.map((e) => e.close().catch(() => undefined)));
});

async function env(name: string): Promise<MigrateEnv> {
  const e = await migrateEnv(shared, name, { tenantKey: KEY, migrationsFrom: FIXTURES, files: ['0001_companies.sql'] });
  envs.push(e);
  return setTiers(e, TIERS, 'free');
}

async function appUrl(e: MigrateEnv, slug: string, password: string): Promise<string> {
  return withPassword((await ok(e, ['resolve', slug])).url, password);
}

/** A URL resolve printed, with the password put where it shows ***. */
function withPassword(printed: string, password: string): string {
  return printed.replace(':***@', `:${encodeURIComponent(password)}@`);
}

async function connect(url: string): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: url });
  c.on('error', () => undefined);
  await c.connect();
  return c;
}

const code = (p: Promise<unknown>) =>
  p.then(
    () => 'ok',
    (err: { code?: string; message?: string }) => err.code ?? err.message,
  );

describe('tier limits where PostgreSQL enforces them', () => {
  it('a schema tenant: limit+1st connection refused, statement over its timeout cancelled; a self-granted escape is found by audit and undone by limits apply', async () => {
    const e = await env('lim');
    await ok(e, ['tenant', 'create', 'lim-s', '--tier', 'tight', '--shard', 'us1']);
    const t = (await tenant(e, 'lim-s'))!;
    const pw = (await ok(e, ['tenant', 'credentials', 'lim-s'])).password as string;
    const url = await appUrl(e, 'lim-s', pw);
    const c1 = await connect(url);
    const c2 = await connect(url);
    try {
      await expect(connect(url)).rejects.toThrow(/too many connections for role "tenant_lim_s"/);
      expect(await code(c1.query('select pg_sleep(2)'))).toBe('57014');
      expect((await c1.query('show statement_timeout')).rows[0].statement_timeout).toBe('300ms');
      // usage counts its sessions (2 open) against its connections quota (1): over.
      const u = await ok(e, ['usage', '--tenant', 'lim-s']);
      expect(u.tenants[0]).toMatchObject({ tenant: 'lim-s', connections: 2, over: expect.arrayContaining(['connections']) });

      // What the role cannot change: its connection limit (a role attribute) and temp_file_limit
      // (superuser-only: tenantctl was granted SET on it, the tenant was not).
      expect(await code(c1.query('alter role current_user connection limit 100'))).toBe('42501');
      expect(await code(c1.query(`set temp_file_limit = '1GB'`))).toBe('42501');
      expect(await code(c1.query(`alter role current_user in database ${t.database_name} set temp_file_limit = '1GB'`))).toBe('42501');
      // What it can: its own session defaults (PostgreSQL allows a role that for itself), and SET
      // in its own session. The database cannot stop this; the audit finds the role-level part.
      expect(await code(c1.query('alter role current_user set statement_timeout = 0'))).toBe('ok');
      expect(await code(c1.query(`alter role current_user in database ${t.database_name} set statement_timeout = 0`))).toBe('ok');
      expect(await code(c1.query('set statement_timeout = 0'))).toBe('ok');
    } finally {
      await c1.end();
      await c2.end();
    }
    const escaped = await connect(url);
    expect((await escaped.query('show statement_timeout')).rows[0].statement_timeout).toBe('0');
    await escaped.end();

    const audit = await e.cli(['audit', '--tenant', 'lim-s', '--no-probes', '--json']);
    const found = json(audit).findings.filter((f: { check: string }) => f.check === 'role.limits-differ');
    expect(found).toHaveLength(1);
    expect(found[0].message).toContain('statement_timeout 0 instead of 300');
    expect(found[0].message).toContain('statement_timeout (role-wide) 0 instead of (none)');

    // Dry run: shows the difference, changes nothing.
    const dry = await ok(e, ['tenant', 'limits', 'apply', '--tenant', 'lim-s', '--dry-run']);
    expect(dry.results[0].changes).toEqual([
      { what: 'statement_timeout', from: '0', to: '300' },
      { what: 'statement_timeout (role-wide)', from: '0', to: null },
    ]);
    const settings = () =>
      e.q(
        'us1',
        'postgres',
        `select setdatabase <> 0 as in_db, setconfig from pg_db_role_setting where setrole = 'tenant_lim_s'::regrole order by 1`,
      );
    expect((await settings()).map((r) => r.setconfig)).toEqual([['statement_timeout=0'], expect.arrayContaining(['statement_timeout=0'])]);
    await ok(e, ['tenant', 'limits', 'apply', '--tenant', 'lim-s']);
    const back = await connect(url);
    expect((await back.query('show statement_timeout')).rows[0].statement_timeout).toBe('300ms');
    await back.end();
    expect(
      json(await e.cli(['audit', '--tenant', 'lim-s', '--no-probes', '--json'])).findings.filter(
        (f: { check: string }) => f.check === 'role.limits-differ',
      ),
    ).toEqual([]);
    expect(
      (await ok(e, ['tenant', 'limits', 'apply', '--dry-run'])).results.every((r: { changes: unknown[] }) => r.changes.length === 0),
    ).toBe(true);

    // set-tier, same model: applied at once and recorded.
    const st = await ok(e, ['tenant', 'set-tier', 'lim-s', 'roomy']);
    expect(st.changes).toEqual(
      expect.arrayContaining([
        { what: 'role connection limit', from: '2', to: '10' },
        { what: 'statement_timeout', from: '300', to: '60000' },
        { what: 'temp_file_limit', from: '1024kB', to: null },
      ]),
    );
    expect((await e.q('us1', 'postgres', `select rolconnlimit from pg_roles where rolname = 'tenant_lim_s'`))[0].rolconnlimit).toBe(10);
    const ev = await e.db
      .selectFrom('events')
      .selectAll()
      .where('tenant_slug', '=', 'lim-s')
      .where('action', '=', 'tier changed')
      .execute();
    expect(ev.map((x) => x.details)).toEqual([expect.objectContaining({ from: 'tight', to: 'roomy' })]);
    const unknown = await e.cli(['tenant', 'set-tier', 'lim-s', 'nope', '--json']);
    expect(unknown.code).toBe(2);
    expect(json(unknown).error.code).toBe('UNKNOWN_TIER');
  });

  it('a limit PostgreSQL refuses for the role is named with why and the grant; nothing of that tenant changes, the others go on', async () => {
    const e = await env('limref');
    await createViaFile(e, [
      { slug: 'limref-a', tier: 'roomy', shard: 'us2' },
      { slug: 'limref-b', tier: 'roomy', shard: 'us1' },
    ]);
    const us2 = e.config.shards.find((s) => s.name === 'us2')!;
    const su = async (sql: string) => {
      const c = new pg.Client({ connectionString: superuserUrl(us2.url) });
      await c.connect();
      await c.query(sql).finally(() => c.end());
    };
    // On us2 only, tenantctl's role loses SET on temp_file_limit (a superuser-only setting).
    await su('revoke set on parameter temp_file_limit from tenantctl');
    try {
      const doc = parseDocument(await readFile(e.configFile, 'utf8'));
      doc.setIn(['tiers', 'roomy', 'tempFileLimit'], '2MB');
      doc.setIn(['tiers', 'roomy', 'statementTimeout'], '2min');
      await writeFile(e.configFile, doc.toString());
      const r = await e.cli(['tenant', 'limits', 'apply', '--json']);
      expect(r.code).toBe(1);
      const rows = Object.fromEntries(json(r).results.map((x: { tenant: string }) => [x.tenant, x]));
      expect(rows['limref-a']).toMatchObject({ status: 'failed', error: { code: 'LIMIT_REFUSED' } });
      expect(rows['limref-a'].error.message).toMatch(
        /PostgreSQL refused temp_file_limit for role tenant_limref_a .*permission denied to set parameter "temp_file_limit"; nothing of its limits was changed/,
      );
      expect(rows['limref-b'].status).toBe('succeeded');
      // Atomic: the statement timeout that came with it was not applied either.
      const [a] = await e.q(
        'us2',
        'postgres',
        `select setconfig from pg_db_role_setting where setrole = 'tenant_limref_a'::regrole and setdatabase <> 0`,
      );
      expect(a.setconfig).toContain('statement_timeout=60000');
      const plain = await e.cli(['tenant', 'limits', 'apply', '--tenant', 'limref-a']);
      expect(plain.code).toBe(2);
      expect(plain.stdout + plain.stderr).toContain('GRANT SET ON PARAMETER temp_file_limit');
    } finally {
      await su('grant set on parameter temp_file_limit to tenantctl');
    }
  });

  it('set-tier to a tier of another model plans the move, and with --move moves the tenant with its data intact and its new limits', async () => {
    const e = await env('limmv');
    await ok(e, ['tenant', 'create', 'limmv-a', '--tier', 'tight', '--shard', 'us1']);
    await seedOwnSchema(e, 'limmv-a');
    const before = await tenantDigests(e, 'limmv-a');
    const planned = await ok(e, ['tenant', 'set-tier', 'limmv-a', 'big']);
    expect(planned.movePlan.to.model).toBe('database');
    expect(planned.move).toBeUndefined();
    expect((await tenant(e, 'limmv-a'))!.model).toBe('schema');
    const moved = await ok(e, ['tenant', 'set-tier', 'limmv-a', 'big', '--move', '--yes']);
    expect(moved.move.status).toBe('switched');
    // The limits live on its new role and database (the move applied them), not on a pool URL.
    expect(moved.limitsOn).toBe('role');
    const t = (await tenant(e, 'limmv-a'))!;
    expect(t.model).toBe('database');
    expect(await tenantDigests(e, 'limmv-a')).toEqual(before);
    const [db] = await e.q(t.shard, 'postgres', `select datconnlimit from pg_database where datname = $1`, [t.database_name]);
    const budget = e.config.shards.find((s) => s.name === t.shard)!.maxConnections;
    expect(db.datconnlimit).toBe(4 + budget);
    const [role] = await e.q(t.shard, 'postgres', `select rolconnlimit from pg_roles where rolname = 'tenant_limmv_a'`);
    expect(role.rolconnlimit).toBe(4);
    expect((await e.db.selectFrom('tenants').select('tier').where('slug', '=', 'limmv-a').executeTakeFirstOrThrow()).tier).toBe('big');
  });

  it('set-tier --move out of a pool says, as move does, that the new role has no password yet; the same tier again says so', async () => {
    const e = await env('limpw');
    await ok(e, ['tenant', 'create', 'limpw-a', '--tier', 'free', '--shard', 'us1']);
    const moved = await e.cli(['tenant', 'set-tier', 'limpw-a', 'tight', '--move', '--yes']);
    expect(moved.code, moved.stdout + moved.stderr).toBe(0);
    expect(moved.stdout).toMatch(/role tenant_limpw_a on shard us\d was made by the move and has no password/);
    expect(moved.stdout).toContain('tenantctl tenant credentials limpw-a gives it one');
    const same = await e.cli(['tenant', 'set-tier', 'limpw-a', 'tight']);
    expect(same.code, same.stdout + same.stderr).toBe(0);
    expect(same.stdout).toContain('limpw-a: tier tight already');
  });

  it('a pool tenant: resolve carries its timeouts and slug; its sessions are counted under it', async () => {
    const e = await env('limp');
    await ok(e, ['tenant', 'create', 'limp-a', '--tier', 'free', '--shard', 'us1']);
    const r = await ok(e, ['resolve', 'limp-a']);
    const u = new URL(r.url);
    expect(u.searchParams.get('application_name')).toBe('limp-a');
    expect(u.searchParams.get('options')).toContain('-c statement_timeout=300 -c lock_timeout=1000');
    const c = await connect(withPassword(r.url, e.config.servingRole.password ?? ''));
    const c2 = await connect(withPassword(r.url, e.config.servingRole.password ?? ''));
    try {
      const s = (
        await c.query(
          `select current_setting('statement_timeout') as st, current_setting('application_name') as app, current_setting('work_mem') as wm`,
        )
      ).rows[0];
      expect(s).toEqual({ st: '300ms', app: 'limp-a', wm: '2MB' });
      expect(await code(c.query('select pg_sleep(2)'))).toBe('57014');
      const usage = await ok(e, ['usage', '--tenant', 'limp-a']);
      expect(usage.tenants[0]).toMatchObject({ tenant: 'limp-a', connections: 2, over: [] });
      expect(usage.tenants[0].calls).toBeUndefined();
    } finally {
      await c.end();
      await c2.end();
    }
  });
});

describe('connection headroom', () => {
  it("doctor fails a tier whose connectionLimit lets one tenant take a shard's every connection, and warns of one with none", async () => {
    const e = await env('hdr');
    const headroom = async () => {
      const r = await e.cli(['doctor', '--json']);
      return { code: r.code, us1: json(r).checks.find((c: { check: string }) => c.check === 'connection headroom on us1') };
    };
    expect(await headroom()).toMatchObject({
      code: 0,
      us1: { ok: true, detail: expect.stringMatching(/^max_connections \d+, \d+ reserved/) },
    });
    await setTiers(e, { ...TIERS, huge: { model: 'database', connectionLimit: 100_000 } }, 'free');
    expect(await headroom()).toMatchObject({
      code: 1,
      us1: {
        ok: false,
        detail: expect.stringMatching(
          /^tier huge's connectionLimit 100000 lets one tenant take every connection of us1 \(max_connections \d+/,
        ),
      },
    });
    await setTiers(e, { ...TIERS, open: { model: 'schema' } }, 'free');
    expect(await headroom()).toMatchObject({
      code: 0,
      us1: { ok: true, warning: true, detail: expect.stringMatching(/^tier open sets no connectionLimit/) },
    });
  });
});

describe('usage', () => {
  it('matches pg_total_relation_size, count(*) by key and the catalog for each model; over-quota exit; textfile replaced atomically', async () => {
    const e = await env('use');
    await createViaFile(e, [
      { slug: 'use-p1', tier: 'free', shard: 'us1' },
      { slug: 'use-p2', tier: 'free', shard: 'us1' },
      { slug: 'use-s', tier: 'tight', shard: 'us1' },
      { slug: 'use-d', tier: 'big', shard: 'us2' },
    ]);
    for (const slug of ['use-p1', 'use-p2', 'use-s', 'use-d']) await seedOwnSchema(e, slug);
    // Settled sizes: autovacuum would otherwise add free-space and visibility maps between
    // the two measurements.
    for (const [shard, database] of [
      ['us1', (await tenant(e, 'use-p1'))!.database_name],
      ['us1', (await tenant(e, 'use-s'))!.database_name],
      ['us2', (await tenant(e, 'use-d'))!.database_name],
    ])
      await e.q(shard, database, 'vacuum analyze');
    const doc = await ok(e, ['usage']);
    const by = Object.fromEntries(doc.tenants.map((t: { tenant: string }) => [t.tenant, t]));
    for (const slug of ['use-s', 'use-d']) {
      const t = (await tenant(e, slug))!;
      const [size] = await e.q(
        t.shard,
        t.database_name,
        `select sum(pg_total_relation_size(c.oid))::bigint::text as b from pg_class c join pg_namespace n on n.oid = c.relnamespace
          where n.nspname = $1 and c.relkind in ('r', 'm', 'p')`,
        [t.schema_name],
      );
      const [rows] = await e.q(
        t.shard,
        t.database_name,
        `select (select count(*) from ${t.schema_name}.companies) + (select count(*) from ${t.schema_name}.campaigns)
              + (select count(*) from ${t.schema_name}.clicks) + (select count(*) from ${t.schema_name}.plans)
              + (select count(*) from ${t.schema_name}.campaign_counts) as n`,
      );
      expect(by[slug].bytes).toBe(Number(size.b));
      expect(by[slug].rows).toBe(Number(rows.n));
    }
    // Pool: rows counted per key; the tenants' byte shares add up to the tables' sizes.
    const p = (await tenant(e, 'use-p1'))!;
    const counted = await e.q(
      'us1',
      p.database_name,
      `select k::text as key, sum(n)::int as n from (
         select id as k, count(*) as n from app.companies group by 1
         union all select company_id, count(*) from app.campaigns group by 1
         union all select company_id, count(*) from app.clicks group by 1
         union all select company_id, count(*) from app.campaign_counts group by 1) x group by 1`,
    );
    for (const slug of ['use-p1', 'use-p2']) {
      const key = (await tenant(e, slug))!.key;
      expect(by[slug].rows).toBe(counted.find((r) => r.key === key)!.n);
    }
    const [poolSize] = await e.q(
      'us1',
      p.database_name,
      `select sum(pg_total_relation_size(relid))::bigint::text as b from (select relid from pg_partition_tree('app.clicks')
         union all select 'app.companies'::regclass union all select 'app.campaigns'::regclass union all select 'app.campaign_counts'::regclass) x`,
    );
    expect(Math.abs(by['use-p1'].bytes + by['use-p2'].bytes - Number(poolSize.b))).toBeLessThanOrEqual(3);
    // The tight tier's rows quota (10): over, and per-shard totals count it.
    expect(by['use-s'].over).toEqual(['rows']);
    expect(doc.overQuota).toBe(1);
    const us1 = doc.shards.find((s: { shard: string }) => s.shard === 'us1');
    expect(us1).toMatchObject({ tenants: 3, overQuota: 1, rows: by['use-p1'].rows + by['use-p2'].rows + by['use-s'].rows });
    expect(doc.shards.every((s: { statements?: string }) => /pg_stat_statements is not installed/.test(s.statements ?? ''))).toBe(true);
    expect(by['use-s'].calls).toBeUndefined();

    const fail = await e.cli(['usage', '--fail-on-quota']);
    expect(fail.code).toBe(1);
    expect(fail.stdout).toMatch(/use-s\t.*OVER: rows/);
    expect((await e.cli(['usage', '--fail-on-quota', '--tenant', 'use-p1,use-d'])).code).toBe(0);

    // --estimate says so; a 100% sample reads every page, so it counts exactly.
    const est = await ok(e, ['usage', '--estimate', '100', '--tenant', 'use-s,use-p1']);
    expect(est.estimate.note).toMatch(/^estimated: .*TABLESAMPLE SYSTEM \(100\)/);
    expect(est.tenants.map((t: { rows: number }) => t.rows)).toEqual([by['use-p1'].rows, by['use-s'].rows]);

    const dir = await mkdtemp(join(tmpdir(), 'tenantctl-prom-'));
    try {
      const file = join(dir, 'tenantctl.prom');
      await ok(e, ['usage', '--metrics-file', file]);
      const first = await stat(file);
      const text = await readFile(file, 'utf8');
      // Prometheus text format, line by line: HELP/TYPE comments, then `name{labels} value`.
      for (const line of text.trim().split('\n')) {
        expect(line).toMatch(/^(|# (HELP|TYPE) \w+ .+|\w+\{(\w+="[^"]*",?)*\} -?[\d.e+]+)$/);
      }
      expect(text).toContain(
        `tenantctl_tenant_rows{tenant="use-s",tier="tight",model="schema",shard="us1",region="us-east"} ${by['use-s'].rows}`,
      );
      expect(text).toContain('tenantctl_tenant_over_quota{tenant="use-s",tier="tight",model="schema",shard="us1",region="us-east"} 1');
      expect(text).not.toContain('tenantctl_tenant_statement_calls{');
      await ok(e, ['usage', '--metrics-file', file]);
      // Replaced by a rename (a new inode), no temporary file left beside it.
      expect((await stat(file)).ino).not.toBe(first.ino);
      expect(await readdir(dir)).toEqual(['tenantctl.prom']);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }

    // A tenant holding its own table in ACCESS EXCLUSIVE mode through its URL: usage names it as
    // not measured (exit 1, not a quiet zero under its quota) and measures its neighbours all the
    // same, without waiting on it for the session's 60 s. A pool tenant holding a pool table: the
    // pool's tenants are not measured, the holder named by its application (its slug).
    await ok(e, ['tenant', 'create', 'use-s2', '--tier', 'tight', '--shard', 'us1']);
    const held = await connect(await appUrl(e, 'use-s', (await ok(e, ['tenant', 'credentials', 'use-s'])).password as string));
    const pool = await connect(withPassword((await ok(e, ['resolve', 'use-p2'])).url, e.config.servingRole.password ?? ''));
    try {
      await held.query('begin');
      await held.query('lock table companies in access exclusive mode');
      const locked = await e.cli(['usage', '--tenant', 'use-s,use-s2,use-d', '--json']);
      expect(locked.code, locked.stderr).toBe(1);
      const doc = JSON.parse(locked.stdout);
      expect(doc.tenants.map((t: { tenant: string }) => t.tenant).sort()).toEqual(['use-d', 'use-s2']);
      expect(doc.failures).toEqual([
        expect.objectContaining({
          tenant: 'use-s',
          status: 'failed',
          error: expect.objectContaining({
            code: 'LOCKED',
            message: expect.stringMatching(/pid \d+ tenant_use_s holds AccessExclusiveLock on t_use_s\.companies.*run usage again/),
          }),
        }),
      ]);
      await held.query('rollback');

      await pool.query('begin');
      await pool.query('lock table companies in access exclusive mode');
      const poolLocked = await e.cli(['usage']);
      expect(poolLocked.code).toBe(1);
      expect(poolLocked.stdout).toMatch(/^use-s2\t/m);
      expect(poolLocked.stdout).not.toMatch(/^use-p\d\t/m);
      expect(poolLocked.stderr).toMatch(
        /not measured: 2 tenants \(us1\/[^)]+\/app\): LOCKED: a session holds its tables in ACCESS EXCLUSIVE mode \(pid \d+ app_user holds AccessExclusiveLock on app\.companies \(application use-p2\)\)/,
      );
    } finally {
      await held.end();
      await pool.end();
    }
  });
});
