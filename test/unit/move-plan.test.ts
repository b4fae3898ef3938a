import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { planMove } from '../../src/move/plan.js';
import { namesAfter } from '../../src/move/names.js';
import { switchFenceRecordFor } from '../../src/move/switch-fence.js';
import { describeChanges } from '../../src/move/unchanged.js';
import type { TenantRow } from '../../src/catalog/tables.js';

const config = parseConfig(readFileSync(new URL('../../tenants.config.yaml', import.meta.url), 'utf8'), '/repo/tenants.config.yaml', {});

const row = (o: Partial<TenantRow> = {}): TenantRow => ({
  id: 1,
  slug: 'acme',
  key: 'k',
  name: 'Acme',
  tier: 'free',
  model: 'pool',
  region: 'us-east',
  shard: 'us1',
  database_name: 'tenant_pool',
  schema_name: 'app',
  residency: null,
  status: 'active',
  status_detail: null,
  schema_version: null,
  created_at: new Date(),
  updated_at: new Date(),
  ...o,
});

describe('planMove (where a moving tenant goes)', () => {
  it('to a shard and model: the target placement is the one a new tenant of that model gets there', () => {
    const p = planMove(config, row(), { toShard: 'eu1', toModel: 'database' });
    expect(p.from.target).toBe('us1/tenant_pool/app');
    expect(p.to).toMatchObject({
      model: 'database',
      shard: 'eu1',
      region: 'eu-west',
      database: 't_acme',
      schema: 'app',
      target: 'eu1/t_acme/app',
    });
  });

  it('to a region: its least-loaded shard, not the current one when the model stays', () => {
    expect(
      planMove(
        config,
        row(),
        { toRegion: 'us-east' },
        new Map([
          ['us1', 0],
          ['us2', 9],
        ]),
      ).to.shard,
    ).toBe('us2');
    expect(
      planMove(
        config,
        row(),
        { toRegion: 'us-east', toModel: 'schema' },
        new Map([
          ['us1', 1],
          ['us2', 9],
        ]),
      ).to.shard,
    ).toBe('us1');
  });

  it('fails closed on residency: a tenant with one never goes to a shard without it', () => {
    const eu = row({ residency: 'eu', region: 'eu-west', shard: 'eu1' });
    expect(() => planMove(config, eu, { toShard: 'us1' })).toThrow(/breaks its residency "eu"/);
    expect(planMove(config, eu, { toShard: 'eu1', toModel: 'schema' }).to.shard).toBe('eu1');
  });

  it('refuses what is not a move, and bad flags, each naming the fix', () => {
    expect(() => planMove(config, row(), { toShard: 'us1' })).toThrow(/already a pool tenant on us1/);
    expect(() => planMove(config, row(), {})).toThrow(/--to-shard, --to-region, or --to-model alone/);
    expect(() => planMove(config, row(), { toShard: 'eu1', toRegion: 'eu-west' })).toThrow(/--to-shard or --to-region, not both/);
    // The model alone: changed where the tenant is.
    expect(planMove(config, row(), { toModel: 'schema' }).to).toMatchObject({ shard: 'us1', model: 'schema' });
    expect(() => planMove(config, row(), { toModel: 'pool' })).toThrow(/already a pool tenant on us1/);
    expect(() => planMove(config, row(), { toShard: 'nope' })).toThrow(/unknown shard "nope"/);
    expect(() => planMove(config, row(), { toRegion: 'mars' })).toThrow(/unknown region "mars"/);
    expect(() => planMove(config, row(), { toShard: 'eu1', toModel: 'cluster' })).toThrow(/unknown model "cluster"/);
  });
});

describe('a moving tenant and migrate up', () => {
  it('is skipped with the reason: the move copies it at the version it checked', async () => {
    const { planTargets } = await import('../../src/migrate/plan.js');
    const p = planTargets([
      {
        slug: 'a',
        model: 'schema',
        region: 'us-east',
        shard: 'us1',
        database_name: 'tenant_schemas',
        schema_name: 't_a',
        status: 'moving',
      },
      {
        slug: 'b',
        model: 'schema',
        region: 'us-east',
        shard: 'us1',
        database_name: 'tenant_schemas',
        schema_name: 't_b',
        status: 'active',
      },
    ]);
    expect(p.targets.map((t) => t.id)).toEqual(['us1/tenant_schemas/t_b']);
    expect(p.skipped).toEqual([expect.objectContaining({ reason: 'moving', target: 'us1/tenant_schemas/t_a' })]);
  });
});

describe('the names an application uses after a move (issue 16, item 2)', () => {
  const names = (o: Partial<TenantRow>, req: { toShard: string; toModel?: string }) => {
    const p = planMove(config, row(o), req);
    return namesAfter(config, 'acme', p.to, p.from);
  };
  it('a move that keeps the model keeps database, schema and role, for every model', () => {
    expect(names({}, { toShard: 'eu1' })).toEqual({
      shard: 'eu1',
      database: 'tenant_pool',
      schema: 'app',
      role: config.servingRole.name,
      unchanged: true,
    });
    const schema = { model: 'schema' as const, database_name: 'tenant_schemas', schema_name: 't_acme' };
    expect(names(schema, { toShard: 'eu1' })).toMatchObject({
      database: 'tenant_schemas',
      schema: 't_acme',
      role: 'tenant_acme',
      unchanged: true,
    });
    const db = { model: 'database' as const, database_name: 't_acme', schema_name: 'app' };
    expect(names(db, { toShard: 'eu1' })).toMatchObject({ database: 't_acme', schema: 'app', role: 'tenant_acme', unchanged: true });
  });
  it('a model change says the names changed', () => {
    expect(names({}, { toShard: 'eu1', toModel: 'schema' })).toMatchObject({ schema: 't_acme', role: 'tenant_acme', unchanged: false });
  });
  it('a new role needs a password: on another cluster, or out of a pool on the same one; not a schema tenant becoming a database one', () => {
    const moved = (o: Partial<TenantRow>, req: { toShard: string; toModel?: string }) => {
      const p = planMove(config, row(o), req);
      return namesAfter(config, 'acme', p.to, p.from, { movedTo: true }).passwordNeeded;
    };
    expect(moved({}, { toShard: 'us1', toModel: 'schema' })).toBe(true);
    expect(moved({}, { toShard: 'us1', toModel: 'database' })).toBe(true);
    const schema = { model: 'schema' as const, database_name: 'tenant_schemas', schema_name: 't_acme' };
    expect(moved(schema, { toShard: 'us1', toModel: 'database' })).toBeUndefined();
    expect(moved(schema, { toShard: 'eu1' })).toBe(true);
    expect(moved({}, { toShard: 'eu1' })).toBeUndefined();
  });
  it('the switch fence of a pool source is a key row, of an exclusive source triggers, naming the target', () => {
    expect(switchFenceRecordFor(planMove(config, row(), { toShard: 'eu1' }))).toMatchObject({
      kind: 'key',
      shard: 'us1',
      livesAt: 'shard eu1, database tenant_pool, schema app (eu1/tenant_pool/app)',
    });
    const schema = { model: 'schema' as const, database_name: 'tenant_schemas', schema_name: 't_acme' };
    expect(switchFenceRecordFor(planMove(config, row(schema), { toShard: 'eu1' })).kind).toBe('trigger');
  });
  it('describes what changed at a source', () => {
    expect(
      describeChanges([
        { table: 'tasks', atSwitch: 60, now: 60 },
        { table: 'notes', atSwitch: 0, now: 2 },
      ]),
    ).toBe('tasks (60 rows at the switch, 60 now, contents changed), notes (0 rows at the switch, 2 now)');
  });
});
