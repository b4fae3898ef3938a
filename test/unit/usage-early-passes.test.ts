import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { earlyGroups } from '../../src/usage/early-passes.js';

// Two shards in two regions, the shipped tiers (free: pool, standard: schema, enterprise: database).
const config = parseConfig(
  `catalog: { shard: us1 }
regions:
  us-east: { shards: { us1: { url: 'postgres://a:b@127.0.0.1:5432/postgres' } } }
  eu-west: { shards: { eu1: { url: 'postgres://a:b@127.0.0.1:5433/postgres', poolDatabase: eu_pool } } }
`,
  '/repo/tenants.config.yaml',
  {},
);

describe("usage's early shared-table passes", () => {
  it('starts one pass per shard on its pool database when the selection may hold pool tenants', () => {
    expect(earlyGroups(config, {})).toEqual([
      { id: 'us1/tenant_pool/app', shard: 'us1', database: 'tenant_pool', schema: 'app' },
      { id: 'eu1/eu_pool/app', shard: 'eu1', database: 'eu_pool', schema: 'app' },
    ]);
    expect(earlyGroups(config, { model: ['pool'], region: ['eu-west'] }).map((g) => g.id)).toEqual(['eu1/eu_pool/app']);
    expect(earlyGroups(config, { tier: ['free'], shard: ['us1'] }).map((g) => g.id)).toEqual(['us1/tenant_pool/app']);
  });

  it('starts none where the selection may hold no pool tenant (a whole scan for nothing)', () => {
    expect(earlyGroups(config, { model: ['schema'] })).toEqual([]);
    expect(earlyGroups(config, { tier: ['standard', 'enterprise'] })).toEqual([]);
    expect(earlyGroups(config, { tenants: ['acme'] })).toEqual([]);
    expect(earlyGroups(config, { status: ['active'] })).toEqual([]);
    expect(earlyGroups(config, { shard: ['nowhere'] })).toEqual([]);
  });
});
