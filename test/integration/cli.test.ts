import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { cli } from '../helpers/cli.js';
import { q, shardDbUrl, testDeps } from '../helpers/deps.js';

const config = inject('fleetConfigFile');
const password = inject('fleetPassword');
let deps: Awaited<ReturnType<typeof testDeps>>;
const tmp = mkdtempSync(join(tmpdir(), 'tenantctl-cli-'));

beforeAll(async () => {
  deps = await testDeps();
});
afterAll(async () => {
  await deps?.close();
  rmSync(tmp, { recursive: true, force: true });
});

function expectNoSecret(text: string): void {
  for (const form of [password, encodeURIComponent(password), deps.config.servingRole.password!]) {
    expect(text.includes(form), `output contains a secret: ${text.slice(0, 300)}`).toBe(false);
  }
}

/** A copy of the fleet config with edits to its text. */
function variant(name: string, edit: (text: string) => string): string {
  const file = join(tmp, `${name}.yaml`);
  writeFileSync(file, edit(readFileSync(config, 'utf8')));
  return file;
}

describe('the CLI as CI runs it (no TTY)', () => {
  it('never prints a password, in any output of any command', async () => {
    const unreachable = variant('unreachable', (t) => t.replace(/127\.0\.0\.1:(\d+)\/postgres/, '127.0.0.1:1/postgres'));
    const runs = [
      ['config', 'show'],
      ['config', 'show', '--json'],
      ['tenant', 'create', 'cli-secret', '--tier', 'standard'],
      ['tenant', 'create', 'cli-secret-db', '--model', 'database', '--json'],
      ['tenant', 'list', '--json'],
      ['tenant', 'list'],
      ['tenant', 'show', 'cli-secret'],
      ['tenant', 'show', 'cli-secret', '--json'],
      ['resolve', 'cli-secret'],
      ['resolve', 'cli-secret', '--json'],
      ['doctor'],
      ['doctor', '--json'],
      ['dev', 'status', '--json'],
      ['tenant', 'show', 'no-such-tenant'],
    ];
    for (const args of runs) {
      const r = await cli(args, { config });
      expectNoSecret(r.stdout + r.stderr);
      // Every run but the unknown tenant (exit 2) succeeds, so the check covers real output. doctor
      // reads the shared fleet, where another file's work in progress (a role it plants and
      // removes, a tenant it is creating) may fail a check (exit 1): that says nothing of secrets.
      if (args[0] === 'doctor') expect([0, 1], `${args.join(' ')}: ${r.stdout}${r.stderr}`).toContain(r.code);
      else expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(args.includes('no-such-tenant') ? 2 : 0);
      if (args.includes('--json')) expect(() => JSON.parse(r.stdout), args.join(' ')).not.toThrow();
    }
    // Errors that quote connection details: an unreachable shard, named, without the password.
    for (const args of [['doctor'], ['tenant', 'list'], ['tenant', 'create', 'cli-unreach', '--json']]) {
      const r = await cli(args, { config: unreachable, env: { TENANTCTL_CONNECT_TIMEOUT_MS: '2000' } });
      expect(r.code).not.toBe(0);
      expectNoSecret(r.stdout + r.stderr);
    }
    const r = await cli(['doctor'], { config: unreachable });
    expect(r.stdout).toMatch(/shard us1\s+FAIL/);
  });

  it('an unreachable shard or catalog is exit 2, names it, times out, and records nothing', async () => {
    // A server that accepts connections and never answers: the connect must time out.
    const silent = createServer(() => {});
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const port = (silent.address() as AddressInfo).port;
    try {
      const text = readFileSync(config, 'utf8');
      const us2Port = /us2:\s*\n\s*url: postgres:\/\/[^\n]*127\.0\.0\.1:(\d+)/.exec(text)![1];
      const hung = variant('hung-us2', (t) => t.replace(`127.0.0.1:${us2Port}/`, `127.0.0.1:${port}/`));
      const started = Date.now();
      const r = await cli(['tenant', 'create', 'cli-hung', '--model', 'schema', '--shard', 'us2'], {
        config: hung,
        env: { TENANTCTL_CONNECT_TIMEOUT_MS: '1000' },
      });
      expect(Date.now() - started).toBeLessThan(15_000);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toMatch(/shard us2 .*unreachable.*timed out/);
      expectNoSecret(r.stderr);
      expect((await cli(['tenant', 'show', 'cli-hung'], { config })).code).toBe(2);
      const catalogDown = variant('catalog-down', (t) =>
        t.replace(/catalog:\n(\s+)shard: us1/, `catalog:\n$1url: postgres://postgres:secret-pw@127.0.0.1:${port}/cat`),
      );
      const c = await cli(['tenant', 'list'], { config: catalogDown, env: { TENANTCTL_CONNECT_TIMEOUT_MS: '1000' } });
      expect(c.code, c.stderr).toBe(2);
      expect(c.stderr).toMatch(/the catalog \(127\.0\.0\.1:\d+\/cat\) is unreachable/);
      expect(c.stderr).not.toMatch(/secret-pw/);
    } finally {
      silent.close();
    }
  });

  it('--json prints exactly one JSON document on stdout', async () => {
    const r = await cli(['tenant', 'create', 'cli-json', '--tier', 'free', '--json'], { config });
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc).toMatchObject({
      command: 'tenant create',
      ok: true,
      summary: { total: 1, succeeded: 1 },
      results: [{ tenant: 'cli-json', model: 'pool', status: 'succeeded' }],
    });
  });

  it('a missing slug off a TTY is exit 2 naming what is missing', async () => {
    const r = await cli(['tenant', 'create', '--tier', 'free'], { config });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/missing the tenant slug/);
    expect(r.stderr).toMatch(/tenant create <slug>/);
  });

  it('a move without a destination says so first, not that it needs --yes', async () => {
    const r = await cli(['move', 'cli-nowhere', '--json'], { config });
    expect(r.code, r.stdout + r.stderr).toBe(2);
    expect(JSON.parse(r.stdout).error).toMatchObject({
      code: 'USAGE',
      message: expect.stringMatching(/^say where to move: --to-shard, --to-region/),
    });
  });

  it('delete without --yes off a TTY is exit 2 and deletes nothing', async () => {
    await cli(['tenant', 'create', 'cli-keep', '--tier', 'standard'], { config });
    const r = await cli(['tenant', 'delete', 'cli-keep'], { config });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--yes/);
    expect((await cli(['tenant', 'show', 'cli-keep'], { config })).code).toBe(0);
    const ok = await cli(['tenant', 'delete', 'cli-keep', '--yes'], { config });
    expect(ok.code).toBe(0);
    expect((await cli(['tenant', 'show', 'cli-keep'], { config })).code).toBe(2);
  });

  it('bad config and bad slugs are exit 2 with the problem named', async () => {
    const cases: [string, RegExp][] = [
      [variant('yaml', (t) => `${t}\n  : : bad: [\n`), /not valid YAML/],
      [variant('unknown', (t) => t.replace('catalog:', 'catalogue: {}\ncatalog:')), /unknown key\(s\) "catalogue"/],
      [
        variant('env', (t) => t.replace('rls:', 'rls:\n  setting: ${TENANTCTL_NOPE_UNSET}\n  # ').replace(/\n {2}# \s*setting:.*\n/, '\n')),
        /TENANTCTL_NOPE_UNSET/,
      ],
    ];
    for (const [file, msg] of cases) {
      const r = await cli(['tenant', 'list'], { config: file });
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toMatch(msg);
      expectNoSecret(r.stderr);
    }
    for (const slug of ['Acme', "o'hare", 'a;drop', '9lives']) {
      const r = await cli(['tenant', 'create', slug], { config });
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/tenant slug/);
    }
    expect((await cli(['tenant', 'create', 'cli-region', '--region', 'mars'], { config })).stderr).toMatch(
      /unknown region "mars".*\n.*us-east/,
    );
  });

  it('honours NO_COLOR and prints no escape codes off a TTY', async () => {
    const r = await cli(['tenant', 'list'], { config, env: { NO_COLOR: '1' } });
    expect(r.stdout + r.stderr).not.toMatch(/\x1b\[/);
  });

  it('a create killed with SIGKILL half-way, then re-run, ends with one active tenant and no leftovers', async () => {
    let pid = 0;
    const killed = cli(['tenant', 'create', 'cli-killed', '--model', 'schema', '--shard', 'us1'], {
      config,
      env: { TENANTCTL_FAULT: 'create.prepared' },
      onSpawn: (p) => (pid = p),
    });
    // A failed spawn rejects it: handled now, thrown at `await killed` below (not unhandled meanwhile).
    killed.catch(() => undefined);
    const url = shardDbUrl(deps.config, 'us1', 'tenant_schemas');
    // The schema and role are made in the provisioning's one transaction, invisible until it
    // commits: wait for that transaction to be open, hanging after the schema's statements.
    const open = `select 1 from pg_stat_activity where datname = 'tenant_schemas' and state = 'idle in transaction' and query like '%t_cli_killed%'`;
    let seen = false;
    for (let i = 0; i < 200 && !seen; i++) {
      seen = (await q(url, open).catch(() => [])).length > 0;
      if (!seen) await new Promise((r) => setTimeout(r, 50));
    }
    expect(seen).toBe(true);
    process.kill(pid, 'SIGKILL');
    expect((await killed).signal).toBe('SIGKILL');
    // The killed client's transaction is rolled back: nothing of the schema or the role is left.
    for (let i = 0; i < 200 && (await q(url, open)).length > 0; i++) await new Promise((r) => setTimeout(r, 50));
    expect(await q(url, `select 1 from pg_namespace where nspname = 't_cli_killed'`)).toEqual([]);
    expect(await q(url, `select 1 from pg_roles where rolname = 'tenant_cli_killed'`)).toEqual([]);
    const mid = JSON.parse((await cli(['tenant', 'show', 'cli-killed', '--json'], { config })).stdout);
    expect(mid.tenant.status).toBe('provisioning');
    const again = await cli(['tenant', 'create', 'cli-killed', '--json'], { config });
    expect(again.code, again.stderr).toBe(0);
    const after = JSON.parse((await cli(['tenant', 'list', '--tenant', 'cli-killed', '--json'], { config })).stdout);
    expect(after.tenants).toHaveLength(1);
    expect(after.tenants[0].status).toBe('active');
    const schemas = await q(url, `select nspname from pg_namespace where nspname like 't_cli_killed%'`);
    expect(schemas.map((s) => s.nspname)).toEqual(['t_cli_killed']);
  });

  it('bulk onboarding from CSV reports per tenant; a bad file creates nothing', async () => {
    const good = join(tmp, 'good.csv');
    writeFileSync(good, 'slug,tier,region\ncli-bulk-a,free,\ncli-bulk-b,standard,us-east\ncli-bulk-c,enterprise,eu-west\ncli-json,free,\n');
    const r = await cli(['tenant', 'create', '--from-file', good, '--concurrency', '2', '--json'], { config });
    expect(r.code, r.stderr).toBe(0); // cli-json exists already: skipped, so a file can be re-run
    const doc = JSON.parse(r.stdout);
    expect(doc.summary).toMatchObject({ total: 4, succeeded: 3, failed: 0, skipped: 1 });
    expect(doc.results.find((x: { tenant: string }) => x.tenant === 'cli-json').reason).toMatch(/already exists/);
    const bad = join(tmp, 'bad.yaml');
    writeFileSync(bad, 'tenants:\n  - slug: cli-bulk-ok\n  - slug: "Bad Slug"\n  - slug: cli-bulk-x\n    colour: red\n');
    const b = await cli(['tenant', 'create', '--from-file', bad], { config });
    expect(b.code).toBe(2);
    expect(b.stderr).toMatch(/item 2 \(Bad Slug\): slug "Bad Slug"/);
    expect(b.stderr).toMatch(/item 3 \(cli-bulk-x\): unknown column\(s\) colour/);
    expect((await cli(['tenant', 'show', 'cli-bulk-ok'], { config })).code).toBe(2);
  });
});
