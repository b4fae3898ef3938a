import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { scopedTables as auditScopedTables } from '../../src/audit/pool-checks.js';
import type { AuditEnv } from '../../src/audit/types.js';
import { loadConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/types.js';
import { databaseUrl } from '../../src/fleet/connection-url.js';
import type { ShardClient } from '../../src/fleet/shard-connections.js';
import { drivers } from '../../src/placement/drivers.js';
import { dropDatabasesAsSuperuser } from '../helpers/test-fleet.js';
import { rlsState, tenantScopedTables } from '../../src/placement/pool/rls.js';
import { schemaTables } from '../../src/placement/pool/shared-tables.js';
import { ident } from '../../src/sql.js';

// Issue 18: the rule "which tables are tenant-scoped" is one SQL fragment (src/placement/scoped-rule.ts).
// A partitioned table whose key column is overridden in tenantKey.tables was where the three
// versions disagreed: row-level security looked the partitions up under their own names (no
// override: not scoped, so they got no policies), the audit under their root's.

const base = loadConfig({ file: inject('fleetConfigFile') });
const shard = base.shards[0];
const config: Config = { ...base, tenantKey: { ...base.tenantKey, tables: { events: 'org_key' } } };
const db = `scoped_${randomBytes(3).toString('hex')}`;
let admin: pg.Client;
let c: pg.Client;

beforeAll(async () => {
  admin = new pg.Client({ connectionString: databaseUrl(shard.url, 'postgres') });
  await admin.connect();
  await admin.query(`create database ${ident(db)}`);
  c = new pg.Client({ connectionString: databaseUrl(shard.url, db) });
  await c.connect();
  await c.query(`create schema app;
    create table app.notes (id int primary key, tenant_id uuid not null);
    create table app.events (id int, org_key uuid not null, at date not null) partition by range (at);
    create table app.events_2025 partition of app.events for values from ('2025-01-01') to ('2026-01-01');
    create table app.events_2026 partition of app.events for values from ('2026-01-01') to ('2027-01-01');`);
});

afterAll(async () => {
  await c?.end();
  await admin?.end();
  await dropDatabasesAsSuperuser(shard.url, [db]);
});

describe('tenant-scoped tables: one rule', () => {
  it("keys a partition of an overridden table by its root's column, in RLS, the audit, sharing and copies alike", async () => {
    const expected = [
      { table: 'events', column: 'org_key' },
      { table: 'events_2025', column: 'org_key' },
      { table: 'events_2026', column: 'org_key' },
      { table: 'notes', column: 'tenant_id' },
    ];
    const rls = (await rlsState(c, 'app', config)).map(({ table, column }) => ({ table, column }));
    expect(rls).toEqual(expected);
    const env = { config } as AuditEnv;
    const audit = (await auditScopedTables(c as unknown as ShardClient, 'app', env, null)).map(({ table, column }) => ({ table, column }));
    expect(audit).toEqual(expected);
    // Parents only where work goes through the root (delete, copy, key checks).
    const parents = [expected[0], expected[3]];
    expect(await tenantScopedTables(c, 'app', config)).toEqual(parents);
    expect(await drivers.pool.scopedTables(c, 'app', config)).toEqual(parents);
    expect((await schemaTables(c, 'app', config)).map((t) => [t.table, t.keyed])).toEqual([
      ['events', true],
      ['notes', true],
    ]);
  });
});
