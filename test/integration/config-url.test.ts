import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { Fleet } from '../../src/fleet/fleet.js';
import { cli } from '../helpers/cli.js';

/**
 * The shared fleet's password is hostile (`p@ss:w/rd%"'x`). Given raw through `${VAR}`, in a URL
 * and as a `password:` part, it must connect to the right cluster and never be printed.
 */
const fleetFile = inject('fleetConfigFile');
const password = inject('fleetPassword');
const base = loadConfig({ file: fleetFile });
const endpoint = (name: string) => {
  const u = new URL(base.shards.find((s) => s.name === name)!.url);
  return { user: decodeURIComponent(u.username), port: u.port };
};
const dir = mkdtempSync(join(tmpdir(), 'tenantctl-config-url-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const env = { CFG_USER: endpoint('us1').user, CFG_PASSWORD: password, CFG_US2_PORT: endpoint('us2').port };

function configFile(name: string, catalog: string): string {
  const file = join(dir, `${name}.yaml`);
  writeFileSync(
    file,
    `${catalog}
migrations:
  dir: ${JSON.stringify(base.migrationsDir)}
regions:
  us-east:
    shards:
      us1:
        url: postgres://\${CFG_USER}:\${CFG_PASSWORD}@127.0.0.1:${endpoint('us1').port}/postgres
      us2:
        host: 127.0.0.1
        port: \${CFG_US2_PORT}
        user: \${CFG_USER}
        password: \${CFG_PASSWORD}
`,
  );
  return file;
}

const good = configFile('good', 'catalog:\n  shard: us1\n  database: cfgurl_catalog');

function expectNoSecret(text: string): void {
  for (const form of [password, encodeURIComponent(password), 'rd%', 'p@ss']) {
    expect(text.includes(form), `output contains the password: ${text.slice(0, 300)}`).toBe(false);
  }
}

describe('a hostile password given through ${VAR}', () => {
  it('connects to the right cluster, in a URL and as a password part', async () => {
    const config = loadConfig({ file: good, env });
    const fleet = new Fleet(config);
    try {
      for (const shard of ['us1', 'us2']) {
        const row = await fleet.withClient(
          shard,
          'postgres',
          async (c) => (await c.query('select current_user as u, inet_server_port() as p')).rows[0],
        );
        expect([row.u, String(row.p)]).toEqual([env.CFG_USER, endpoint(shard).port]);
      }
    } finally {
      await fleet.close();
    }
  });

  it('works through the CLI (the catalog URL derived from it too) and never prints it', async () => {
    for (const args of [
      ['config', 'show'],
      ['config', 'show', '--json'],
      ['tenant', 'list', '--json'],
    ]) {
      const r = await cli(args, { config: good, env });
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(0);
      expectNoSecret(r.stdout + r.stderr);
    }
  });

  it('is not printed when a connection fails', async () => {
    const down = configFile('down', 'catalog:\n  url: postgres://${CFG_USER}:${CFG_PASSWORD}@127.0.0.1:1/cfgurl_catalog');
    const r = await cli(['tenant', 'list'], { config: down, env });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('127.0.0.1:1');
    expectNoSecret(r.stdout + r.stderr);
  });
});

describe('a catalog database that does not exist yet', () => {
  it('is created by the first command, which says so and where, so a wrong catalog.url is not mistaken for an empty fleet', async () => {
    const database = `cfgurl_new_${process.pid}`;
    const file = configFile('new-catalog', `catalog:\n  shard: us1\n  database: ${database}`);
    const fleet = new Fleet(loadConfig({ file, env }));
    try {
      const first = await cli(['tenant', 'list', '--json'], { config: file, env });
      expect(first.code, first.stderr).toBe(0);
      expect(JSON.parse(first.stdout).tenants).toEqual([]);
      expect(first.stderr).toContain(`note: created the catalog (on shard us1, 127.0.0.1:${endpoint('us1').port}/${database}), empty`);
      expect(first.stderr).toContain('catalog.url (or catalog.shard and catalog.database) points elsewhere');
      expectNoSecret(first.stdout + first.stderr);
      // Only the command that made it says so.
      const second = await cli(['tenant', 'list'], { config: file, env });
      expect(second.code, second.stderr).toBe(0);
      expect(second.stderr).not.toContain('note: created');
    } finally {
      await fleet.withClient('us1', 'postgres', (c) => c.query(`drop database if exists ${database} with (force)`)).catch(() => undefined);
      await fleet.close();
    }
  });
});
