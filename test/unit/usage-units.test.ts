import { describe, expect, it } from 'vitest';
import type { TenantRow } from '../../src/catalog/tables.js';
import { planUsageUnits } from '../../src/usage/measure.js';

const row = (slug: string, status: TenantRow['status']): TenantRow =>
  ({
    slug,
    status,
    model: 'schema',
    shard: 'us1',
    region: 'us-east',
    database_name: 'tenant_schemas',
    schema_name: `t_${slug}`,
    key: slug,
  }) as TenantRow;

describe('planUsageUnits', () => {
  it('measures active, suspended and moving tenants (where the catalog says they live); not half-made or half-removed ones', () => {
    const units = planUsageUnits(
      ['active', 'suspended', 'moving', 'provisioning', 'deleting', 'failed'].map((s) => row(`t-${s}`, s as TenantRow['status'])),
    );
    const measured = new Set(units.flatMap((u) => u.tenants.map((t) => t.slug)));
    expect([...measured].sort()).toEqual(['t-active', 't-moving', 't-suspended']);
  });
});
