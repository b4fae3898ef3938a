import { describe, expect, it } from 'vitest';
import { MODELS } from '../../src/config/schema.js';
import { drivers, placementFor } from '../../src/placement/drivers.js';
import { keyCondition } from '../../src/placement/key-filter.js';
import { MODEL_TRAITS, perAttempt, placeLabel, roleCarriesOver } from '../../src/placement/placement.js';

// Issue 18 item 4: one driver per model, of one kind, agreeing with the model's traits.
describe('placement drivers', () => {
  it('registers one driver per model, of the kind its traits say, with the fence its traits say', () => {
    for (const m of MODELS) {
      const d = drivers[m];
      expect([m, d.model]).toEqual([m, m]);
      expect([m, d.kind]).toEqual([m, MODEL_TRAITS[m].sharedTables ? 'shared-tables' : 'own-placement']);
      expect([m, d.fence.write]).toEqual([m, MODEL_TRAITS[m].writeFence]);
      expect([m, d.fence.switch]).toEqual([m, MODEL_TRAITS[m].sharedTables ? 'key' : 'trigger']);
    }
  });

  it('filters by key only where tables are shared, through the one key filter', () => {
    expect(drivers.pool.keyFilter('tenant_id', 'bigint', '42')).toBe(`"tenant_id" = '42'::bigint`);
    expect(drivers.pool.keyFilter('tenant_id', 'uuid', { param: '$1' }, 'n')).toBe(`n."tenant_id" = $1::uuid`);
    expect(drivers.schema.keyFilter('tenant_id', 'bigint', '42')).toBeNull();
    expect(drivers.database.keyFilter('tenant_id', 'bigint', '42')).toBeNull();
    // A quote in a key stays inside the literal; the cast rejects a malformed key.
    expect(keyCondition('k', 'text', "a'b")).toBe(`"k" = 'a''b'::text`);
    expect(keyCondition('k', '', { param: '$2' })).toBe(`"k" = $2`);
  });

  it('names a new placement through its driver', () => {
    const dbs = { poolDatabase: 'tenant_pool', tenantDatabase: 'tenant_schemas' };
    expect(placementFor('acme-co', 'pool', 'us1', dbs)).toEqual({ model: 'pool', shard: 'us1', database: 'tenant_pool', schema: 'app' });
    expect(placementFor('acme-co', 'schema', 'us1', dbs)).toEqual({
      model: 'schema',
      shard: 'us1',
      database: 'tenant_schemas',
      schema: 't_acme_co',
    });
    expect(placementFor('acme-co', 'database', 'us1', dbs)).toEqual({
      model: 'database',
      shard: 'us1',
      database: 't_acme_co',
      schema: 'app',
    });
  });

  it('answers the placement questions callers used to answer from traits', () => {
    expect(roleCarriesOver({ model: 'schema', shard: 'us1' }, { shard: 'us1' })).toBe(true);
    expect(roleCarriesOver({ model: 'schema', shard: 'us1' }, { shard: 'us2' })).toBe(false);
    expect(roleCarriesOver({ model: 'pool', shard: 'us1' }, { shard: 'us1' })).toBe(false);
    expect(perAttempt({ model: 'database', database: 't_a' }, '__r1').database).toBe('t_a__r1');
    expect(perAttempt({ model: 'schema', database: 'tenant_schemas' }, '__r1').database).toBe('tenant_schemas');
    expect(placeLabel({ model: 'database', shard: 'us1', database_name: 't_a', schema_name: 'app' })).toBe('us1/t_a');
    expect(placeLabel({ model: 'pool', shard: 'us1', database_name: 'tenant_pool', schema_name: 'app' })).toBe('us1/tenant_pool/app');
  });
});
