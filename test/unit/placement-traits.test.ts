import { describe, expect, it } from 'vitest';
import { planUnits } from '../../src/audit/run.js';
import { drivers } from '../../src/placement/drivers.js';
import {
  MODEL_TRAITS,
  modelsWith,
  needsKeyRewrite,
  pgDumpTarget,
  placementBeside,
  placementOf,
  scopeOf,
  scopeWhere,
  shapeOf,
  stagingPlacement,
  tenantRole,
} from '../../src/placement/placement.js';

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

describe('what each model answers (a flipped trait fails here)', () => {
  it('has one row of traits per model', () => {
    expect(MODEL_TRAITS).toEqual({
      pool: { ownRole: false, ownDatabase: false, sharedTables: true, writeFence: 'advisory' },
      schema: { ownRole: true, ownDatabase: false, sharedTables: false, writeFence: 'trigger' },
      database: { ownRole: true, ownDatabase: true, sharedTables: false, writeFence: 'trigger' },
    });
    expect(modelsWith('sharedTables')).toEqual(['pool']);
  });

  it('derives the shape of a placement in its database', () => {
    expect(shapeOf('pool')).toBe('shared-tables');
    expect(shapeOf('schema')).toBe('shared-database');
    expect(shapeOf('database')).toBe('own-database');
  });

  it('selects a shared-table tenant by its key as a quoted literal, and everything of an own placement', () => {
    expect(scopeWhere({ model: 'pool', key: "4'2" }, 'tenant id', 'bigint')).toBe(` where "tenant id" = '4''2'::bigint`);
    expect(scopeWhere({ model: 'schema', key: '42' }, 'tenant_id', 'bigint')).toBe('');
    expect(scopeWhere({ model: 'database', key: '42' }, 'tenant_id', 'bigint')).toBe('');
  });

  it('rewrites keys only when rows land in shared tables from a placement of their own', () => {
    const answers = (['pool', 'schema', 'database'] as const).flatMap((from) =>
      (['pool', 'schema', 'database'] as const).filter((to) => needsKeyRewrite(from, to)).map((to) => `${from}->${to}`),
    );
    expect(answers).toEqual(['schema->pool', 'database->pool']);
  });

  it('dumps the own database, the own schema, or nothing for shared tables', () => {
    const p = (model: 'pool' | 'schema' | 'database') => ({ model, database: 'db', schema: 's' });
    expect(pgDumpTarget(p('pool'))).toBeNull();
    expect(pgDumpTarget(p('schema'))).toEqual({ database: 'db', schema: 's' });
    expect(pgDumpTarget(p('database'))).toEqual({ database: 'db' });
  });

  it('puts a fresh placement beside the live one under a suffixed name, capped at 63 bytes', () => {
    expect(placementBeside(row('pool'), '__r1')).toBeNull();
    expect(placementBeside(row('schema'), '__r1')).toEqual({ database_name: 'tenant_schemas', schema_name: 't_acme_corp__r1' });
    expect(placementBeside(row('database'), '__r1')).toEqual({ database_name: 't_acme_corp__r1', schema_name: 'app' });
    expect(placementBeside({ ...row('database'), database_name: 'd'.repeat(60) }, '__rabcdef')?.database_name).toHaveLength(63);
  });

  it('stages a restore in a scratch placement scoped and migrated as one tenant’s own', () => {
    const s = stagingPlacement('us1', 'tenant_pool', 'tenantctl_restore_7');
    expect(s).toEqual({ model: s.model, shard: 'us1', database: 'tenant_pool', schema: 'tenantctl_restore_7' });
    expect(MODEL_TRAITS[s.model].sharedTables).toBe(false);
    expect(scopeWhere({ model: s.model, key: '42' }, 'tenant_id', 'bigint')).toBe('');
  });
});

describe('audit units', () => {
  const t = (slug: string, model: 'pool' | 'schema' | 'database', status = 'active') =>
    ({ ...row(model), slug, key: slug, database_name: model === 'database' ? `t_${slug}` : row(model).database_name, status }) as never;
  it('groups tenants by the shape of their placement', () => {
    const config = { shards: [{ name: 'us1', poolDatabase: 'tenant_pool' }] } as never;
    const units = planUnits(
      config,
      [t('a', 'pool'), t('b', 'schema'), t('c', 'schema'), t('d', 'database'), t('e', 'database', 'failed')],
      1,
    );
    expect(units.map((u) => [u.kind, u.id, u.tenants.map((x) => x.slug).join(',')])).toEqual([
      ['cluster', 'us1/(cluster)', 'a,b,c,d,e'],
      ['shared-tables', 'us1/tenant_pool', 'a'],
      ['shared-database', 'us1/tenant_schemas#0', 'b'],
      ['shared-database', 'us1/tenant_schemas#1', 'c'],
      ['own-database', 'us1/t_d', 'd'],
    ]);
  });
});

describe('drivers agree with the traits', () => {
  // Callers branch on a trait and then call the driver's optional method (restore and move call
  // createInOneTransaction! when the tables are not shared): the two must never disagree.
  it('offers one-transaction creation exactly for placements of the tenant’s own, key rows exactly for shared tables', () => {
    for (const m of ['pool', 'schema', 'database'] as const) {
      expect([m, Boolean(drivers[m].createInOneTransaction)]).toEqual([m, !MODEL_TRAITS[m].sharedTables]);
      expect([m, Boolean(drivers[m].keyRows)]).toEqual([m, MODEL_TRAITS[m].sharedTables]);
    }
  });
});
