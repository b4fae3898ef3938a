import { describe, expect, it } from 'vitest';
import { MODEL_TRAITS, modelsWith, placementOf, scopeOf, tenantRole } from '../../src/placement/placement.js';

const row = (model: 'pool' | 'schema' | 'database') => ({
  slug: 'acme-corp',
  key: '42',
  model,
  shard: 'us1',
  database_name: model === 'database' ? 't_acme_corp' : model === 'pool' ? 'tenant_pool' : 'tenant_schemas',
  schema_name: model === 'schema' ? 't_acme_corp' : 'app',
});

describe('placement vocabulary', () => {
  it('names a role only for models that give a tenant one', () => {
    expect(tenantRole(row('schema'))).toBe('tenant_acme_corp');
    expect(tenantRole(row('database'))).toBe('tenant_acme_corp');
    expect(tenantRole(row('pool'))).toBeNull();
    expect(modelsWith('ownRole').sort()).toEqual(['database', 'schema']);
    expect(modelsWith('ownDatabase')).toEqual(['database']);
  });

  it('maps a catalog row to one Placement with its role', () => {
    expect(placementOf(row('schema'))).toEqual({
      model: 'schema',
      shard: 'us1',
      database: 'tenant_schemas',
      schema: 't_acme_corp',
      slug: 'acme-corp',
      key: '42',
      role: 'tenant_acme_corp',
    });
  });

  it('scopes a shared-table tenant by its key and an exclusive one by its whole placement', () => {
    expect(scopeOf(row('pool'))).toEqual({
      kind: 'rows',
      key: '42',
      placement: { model: 'pool', shard: 'us1', database: 'tenant_pool', schema: 'app' },
    });
    expect(scopeOf(row('schema')).kind).toBe('placement');
    expect(scopeOf(row('database'))).toEqual({
      kind: 'placement',
      placement: { model: 'database', shard: 'us1', database: 't_acme_corp', schema: 'app' },
    });
    // Every model is described, so a lookup never yields undefined.
    expect(Object.keys(MODEL_TRAITS).sort()).toEqual(['database', 'pool', 'schema']);
  });
});
