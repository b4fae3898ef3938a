import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { limitDurationMs, sizeBytes } from '../../src/config/tier-limits.js';
import type { TenantctlError } from '../../src/errors.js';
import { limitSettings, sessionOptions } from '../../src/limits/settings.js';
import { desiredLimits, limitChanges, type LimitTarget } from '../../src/placement/limits.js';
import { overQuota, quotasOf } from '../../src/usage/quotas.js';

/** Issue 19: tier limits in the config, what they become in PostgreSQL, and quotas. Pure. */
const BASE = `catalog: { shard: us1 }
regions: { us-east: { shards: { us1: { url: 'postgres://a:b@127.0.0.1:5432/postgres' } } } }
`;
const load = (tiers: string) => parseConfig(`${BASE}tiers:\n${tiers}`, '/x/tenants.config.yaml', {});

describe('tier limits in the config', () => {
  it('loads tiers without limits as before, and with every limit and quota', () => {
    expect(load('  free: { model: pool }\n').tiers.free).toEqual({ model: 'pool' });
    const c = load(`  free:
    model: pool
    connectionLimit: 5
    statementTimeout: 5s
    idleInTransactionTimeout: 1min
    lockTimeout: 250ms
    workMem: 4MB
    tempFileLimit: 1GB
    quotas: { storage: 5GB, rows: { total: 1000, perTable: 100 }, connections: "7" }
  big: { model: database, quotas: { storage: unlimited, rows: 10 } }
`);
    expect(c.tiers.free.quotas?.connections).toBe(7);
    expect(quotasOf(c.tiers.free)).toEqual({ storage: 5 * 1024 ** 3, rows: 1000, rowsPerTable: 100, connections: 7 });
    expect(quotasOf(c.tiers.big)).toEqual({ storage: null, rows: 10, rowsPerTable: null, connections: null });
  });

  it('reports every bad limit at once: unknown keys, units that do not parse, values PostgreSQL cannot hold', () => {
    let err: TenantctlError | undefined;
    try {
      load(`  free:
    model: pool
    connectionLimt: 5
    statementTimeout: 5 seconds
    workMem: 10kB
    tempFileLimit: 1.5GB
    lockTimeout: 40d
    quotas: { storage: 5 gigs, bytes: 1 }
`);
    } catch (e) {
      err = e as TenantctlError;
    }
    expect(err?.code).toBe('CONFIG_INVALID');
    expect(err?.exitCode).toBe(2);
    const m = err!.message;
    expect(m).toContain('tiers.free: unknown key(s) "connectionLimt"');
    expect(m).toContain('tiers.free.statementTimeout: must be a duration such as 500ms, 5s, 2min or 1h (got "5 seconds")');
    expect(m).toContain('tiers.free.workMem: must be between 64kB and 2147483647kB (got 10kB)');
    expect(m).toContain('tiers.free.tempFileLimit: must be a size such as 512MB or 5GB');
    expect(m).toContain('tiers.free.lockTimeout: must be a duration');
    expect(m).toContain('tiers.free.quotas: unknown key(s) "bytes"');
    expect(m).toContain('tiers.free.quotas.storage');
    expect(m).toMatch(/has 7 problem\(s\)/);
  });

  it('parses units', () => {
    expect(limitDurationMs('2min')).toBe(120_000);
    expect(limitDurationMs('1h')).toBe(3_600_000);
    expect(limitDurationMs('5 s')).toBeNull();
    expect(sizeBytes('5GB')).toBe(5 * 1024 ** 3);
    expect(sizeBytes('512kB')).toBe(512 * 1024);
    expect(sizeBytes(42)).toBe(42);
    expect(sizeBytes('5 gigs')).toBeNull();
  });
});

describe('what the limits become', () => {
  const tier = { connectionLimit: 3, statementTimeout: '5s', workMem: '4MB', tempFileLimit: '1GB' };
  it('settings as PostgreSQL stores them; a pool URL leaves out what only a superuser may set', () => {
    expect(limitSettings(tier)).toEqual({ statement_timeout: '5000', work_mem: '4096kB', temp_file_limit: '1048576kB' });
    expect(sessionOptions(tier)).toEqual(['-c statement_timeout=5000', '-c work_mem=4096kB']);
  });

  it('changes: what differs, including a role-wide setting the tenant set on itself; nothing when all matches', () => {
    const target: LimitTarget = { slug: 'acme', role: 'tenant_acme', database: 't_acme', ownDatabase: true };
    const want = desiredLimits(target, tier, 10);
    expect(want.databaseConnectionLimit).toBe(13);
    const changes = limitChanges(target, want, {
      roleExists: true,
      roleConnectionLimit: -1,
      databaseConnectionLimit: 13,
      inDatabase: { statement_timeout: '0', lock_timeout: '100' },
      roleWide: { statement_timeout: '0' },
    });
    expect(changes.map((c) => [c.what, c.from, c.to])).toEqual([
      ['role connection limit', '-1', '3'],
      ['statement_timeout', '0', '5000'],
      ['statement_timeout (role-wide)', '0', null],
      ['lock_timeout', '100', null],
      ['work_mem', null, '4096kB'],
      ['temp_file_limit', null, '1048576kB'],
    ]);
    expect(changes[1].sql).toBe(`alter role "tenant_acme" in database "t_acme" set statement_timeout = '5000'`);
    expect(changes[3].sql).toBe('alter role "tenant_acme" in database "t_acme" reset lock_timeout');
    const same = { roleExists: true, roleConnectionLimit: 3, databaseConnectionLimit: 13, inDatabase: limitSettings(tier), roleWide: {} };
    expect(limitChanges(target, want, same)).toEqual([]);
  });

  it('over quota', () => {
    const q = quotasOf({ quotas: { storage: '1kB', rows: { perTable: 5 }, connections: 1 } });
    expect(overQuota({ bytes: 2048, rows: 3, maxTableRows: 6, connections: 1 }, q)).toEqual(['storage', 'rowsPerTable']);
    expect(overQuota({ bytes: 1024, rows: 3, maxTableRows: 5, connections: 1 }, q)).toEqual([]);
  });
});
