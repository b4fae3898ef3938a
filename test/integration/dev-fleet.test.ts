import { createServer, type Server } from 'node:net';
import pg from 'pg';
import { describe, expect, inject, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { UsageError } from '../../src/errors.js';
import { devDown, devReset, devStatus, devUp } from '../../src/dev/fleet.js';
import { startTestFleet, superuserUrl } from '../helpers/test-fleet.js';

const config = loadConfig({ file: inject('fleetConfigFile') });
const password = inject('fleetPassword');

async function query<T extends pg.QueryResultRow>(url: string, sql: string): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<T>(sql)).rows;
  } finally {
    await client.end();
  }
}

async function serverVersion(url: string): Promise<string> {
  const [row] = await query<{ v: string }>(url, `select current_setting('server_version') as v`);
  return row.v;
}

async function hasMarker(url: string): Promise<boolean> {
  const [row] = await query<{ t: string | null }>(url, `select to_regclass('public.dev_fleet_marker')::text as t`);
  return row.t !== null;
}

function listen(port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port }, () => resolve(server));
  });
}

describe('dev fleet', () => {
  it('serves every shard as PostgreSQL 15, with the password from the url', async () => {
    expect(config.shards.map((s) => s.name)).toEqual(['us1', 'us2', 'eu1']);
    for (const shard of config.shards) {
      expect(await serverVersion(shard.url)).toMatch(/^15\./);
    }
  });

  it('up again is a no-op reported as already running', async () => {
    const results = await devUp(config);
    expect(results.map((r) => [r.shard, r.state])).toEqual([
      ['us1', 'already running'],
      ['us2', 'already running'],
      ['eu1', 'already running'],
    ]);
  });

  it('status reports every shard running on its port', async () => {
    const results = await devStatus(config);
    for (const r of results) {
      expect(r.state).toBe('running');
      expect(config.shards.find((s) => s.name === r.shard)?.url).toContain(`:${r.port}/`);
    }
    expect(JSON.stringify(results)).not.toContain(password);
    expect(JSON.stringify(results)).not.toContain(encodeURIComponent(password));
  });

  it('a port taken by another program is refused with DEV_PORT_TAKEN naming shard and port, and nothing starts', async () => {
    const fleet = await startTestFleet({ shards: 1 });
    try {
      const [us1] = fleet.config.shards;
      const port = Number(new URL(us1.url).port);
      // As the superuser: the shard role (least privilege) may not create in public.
      await query(superuserUrl(us1.url), 'create table dev_fleet_marker (id int)');
      expect(await devDown(fleet.config)).toMatchObject([{ shard: 'us1', state: 'stopped' }]);

      const squatter = await listen(port);
      try {
        const err = await devUp(fleet.config).then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(err).toBeInstanceOf(UsageError);
        expect(err).toMatchObject({ code: 'DEV_PORT_TAKEN', exitCode: 2 });
        const { message, hint } = err as UsageError;
        expect(message).toContain('us1');
        expect(message).toContain(String(port));
        expect(hint).toContain('TENANTCTL_DEV_PORT_US1');
        expect(`${message} ${hint}`).not.toContain(fleet.password);
        expect(await devStatus(fleet.config)).toMatchObject([{ shard: 'us1', state: 'not running' }]);
      } finally {
        await new Promise((resolve) => squatter.close(resolve));
      }

      // Initialised but stopped: up just starts it again, data intact.
      expect(await devUp(fleet.config)).toMatchObject([{ shard: 'us1', state: 'started' }]);
      expect(await hasMarker(us1.url)).toBe(true);

      // Reset is a fresh cluster: the table is gone.
      expect(await devReset(fleet.config)).toMatchObject([{ shard: 'us1', state: 'reset' }]);
      expect(await hasMarker(us1.url)).toBe(false);
    } finally {
      await fleet.stop();
    }
    expect(await devStatus(fleet.config)).toMatchObject([{ shard: 'us1', state: 'not running' }]);
  });
});
