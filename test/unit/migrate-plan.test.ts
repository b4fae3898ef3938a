import { describe, expect, it } from 'vitest';
import { UsageError } from '../../src/errors.js';
import type { MigrationFile } from '../../src/migrate/files.js';
import {
  fnv1a,
  inPartition,
  parsePartition,
  partitionOf,
  planTargets,
  splitCanaries,
  type PlannableTenant,
} from '../../src/migrate/plan.js';
import { nothingToDo, versionOf, type TargetState } from '../../src/migrate/state.js';
import { statusDocument, statusOf } from '../../src/migrate/status.js';
import { pendingFor, type AppliedRow } from '../../src/migrate/tracking.js';

function tenant(
  slug: string,
  model: PlannableTenant['model'],
  shard = 'us1',
  status: PlannableTenant['status'] = 'active',
): PlannableTenant {
  const ident = slug.replace(/-/g, '_');
  return {
    slug,
    model,
    region: shard.startsWith('eu') ? 'eu-west' : 'us-east',
    shard,
    status,
    database_name: model === 'pool' ? 'tenant_pool' : model === 'schema' ? 'tenant_schemas' : `t_${ident}`,
    schema_name: model === 'schema' ? `t_${ident}` : 'app',
  };
}

const fleet: PlannableTenant[] = [
  tenant('zeta', 'schema', 'us2'),
  tenant('acme', 'schema'),
  tenant('free-a', 'pool', 'us2'),
  tenant('free-b', 'pool'),
  tenant('free-c', 'pool'),
  tenant('big', 'database', 'eu1'),
  tenant('sleepy', 'schema', 'us1', 'suspended'),
  tenant('newbie', 'schema', 'us1', 'provisioning'),
  tenant('broken', 'database', 'eu1', 'failed'),
  tenant('leaving', 'pool', 'us1', 'deleting'),
];

describe('planTargets', () => {
  it('puts one pool target per shard first, serving all its pool tenants, then schema and database targets by slug', () => {
    const plan = planTargets(fleet);
    expect(plan.targets.map((t) => t.id)).toEqual([
      'us1/tenant_pool/app',
      'us2/tenant_pool/app',
      'us1/tenant_schemas/t_acme',
      'eu1/t_big/app',
      'us1/tenant_schemas/t_sleepy',
      'us2/tenant_schemas/t_zeta',
    ]);
    expect(plan.targets[0]).toMatchObject({ model: 'pool', shard: 'us1', region: 'us-east', database: 'tenant_pool', schema: 'app' });
    expect(plan.targets[0].tenants.map((t) => t.slug)).toEqual(['free-b', 'free-c']);
    expect(plan.targets[1].tenants.map((t) => t.slug)).toEqual(['free-a']);
  });

  it('skips provisioning, failed and deleting tenants with the reason, and migrates suspended ones', () => {
    const plan = planTargets(fleet);
    expect(plan.skipped.map((s) => [s.tenant.slug, s.reason, s.target])).toEqual([
      ['broken', 'failed', 'eu1/t_broken/app'],
      ['leaving', 'deleting', 'us1/tenant_pool/app'],
      ['newbie', 'provisioning', 'us1/tenant_schemas/t_newbie'],
    ]);
    expect(plan.targets.some((t) => t.tenants.some((x) => x.slug === 'sleepy'))).toBe(true);
  });

  it('is deterministic whatever the input order', () => {
    const a = planTargets(fleet);
    const b = planTargets([...fleet].reverse());
    expect(b).toEqual(a);
  });

  it('keeps only the given target ids (resume, only-failed)', () => {
    const plan = planTargets(fleet, { only: new Set(['eu1/t_big/app', 'us1/tenant_schemas/t_newbie']) });
    expect(plan.targets.map((t) => t.id)).toEqual(['eu1/t_big/app']);
    expect(plan.skipped.map((s) => s.tenant.slug)).toEqual(['newbie']);
  });

  it('drops a pool target whose tenants are all skipped', () => {
    const plan = planTargets([tenant('gone', 'pool', 'us3', 'deleting')]);
    expect(plan.targets).toEqual([]);
    expect(plan.skipped).toHaveLength(1);
  });
});

describe('partition I/N', () => {
  const many: PlannableTenant[] = [];
  for (let i = 0; i < 997; i++) many.push(tenant(`t${i}`, i % 10 === 0 ? 'database' : 'schema', `us${(i % 3) + 1}`));
  for (let s = 1; s <= 3; s++) many.push(tenant(`pool${s}`, 'pool', `us${s}`));
  many.push(tenant('stuck', 'schema', 'us1', 'provisioning'));

  it.each([1, 2, 3, 4, 7])('covers every target and skipped tenant exactly once across %i slices', (n) => {
    const all = planTargets(many);
    const slices = Array.from({ length: n }, (_, i) => planTargets(many, { partition: { index: i + 1, count: n } }));
    const ids = slices.flatMap((p) => p.targets.map((t) => t.id));
    expect(ids.length).toBe(all.targets.length);
    expect(new Set(ids)).toEqual(new Set(all.targets.map((t) => t.id)));
    expect(slices.flatMap((p) => p.skipped.map((s) => s.tenant.slug)).sort()).toEqual(['stuck']);
    // Every pool tenant stays with its pool target.
    for (const p of slices) for (const t of p.targets) if (t.model === 'pool') expect(t.tenants).toHaveLength(1);
    if (n > 1) {
      // Roughly even: no slice gets less than half or more than double its share.
      for (const p of slices) {
        expect(p.targets.length).toBeGreaterThan(all.targets.length / n / 2);
        expect(p.targets.length).toBeLessThan((all.targets.length / n) * 2);
      }
    }
  });

  it('uses a stable hash of the target id (the same split on every machine and run)', () => {
    expect(fnv1a('')).toBe(0x811c9dc5);
    expect(fnv1a('a')).toBe(0xe40c292c);
    expect(fnv1a('foobar')).toBe(0xbf9cf968);
    expect(partitionOf('us1/tenant_schemas/t_acme', 4)).toBe((fnv1a('us1/tenant_schemas/t_acme') % 4) + 1);
    expect(inPartition('x', { index: 1, count: 1 })).toBe(true);
  });

  it('parses I/N and refuses anything else with exit 2', () => {
    expect(parsePartition('2/4')).toEqual({ index: 2, count: 4 });
    expect(parsePartition(' 1 / 1 ')).toEqual({ index: 1, count: 1 });
    for (const bad of ['0/4', '5/4', '1/0', 'a/b', '2', '-1/3', '1/1001', '1.5/3']) {
      expect(() => parsePartition(bad), bad).toThrow(UsageError);
    }
  });
});

describe('splitCanaries', () => {
  it('prefers schema and database targets over pool targets, keeping plan order', () => {
    const targets = planTargets(fleet).targets;
    const { canaries, rest } = splitCanaries(targets, 2);
    expect(canaries.map((t) => t.id)).toEqual(['us1/tenant_schemas/t_acme', 'eu1/t_big/app']);
    expect(rest.map((t) => t.id)).toEqual([
      'us1/tenant_pool/app',
      'us2/tenant_pool/app',
      'us1/tenant_schemas/t_sleepy',
      'us2/tenant_schemas/t_zeta',
    ]);
  });

  it('falls back to pool targets when there are not enough others, and 0 means none', () => {
    const targets = planTargets(fleet).targets;
    expect(splitCanaries(targets, 5).rest.map((t) => t.id)).toEqual(['us2/tenant_pool/app']);
    expect(splitCanaries(targets, 0)).toEqual({ canaries: [], rest: targets });
  });
});

describe('status grouping', () => {
  const files = ['0001_a', '0002_b', '0003_c'].map((id, i) => ({ id, number: i + 1, checksum: `sum${i + 1}` }) as MigrationFile);
  const rows = (schema: string, ids: string[], checksums: Record<string, string> = {}): AppliedRow[] =>
    ids.map((name) => ({
      schema,
      name,
      checksum: checksums[name] ?? `sum${Number(name.slice(0, 4))}`,
      appliedAt: new Date(0),
      durationMs: 1,
    }));
  const state = (r: AppliedRow[]): TargetState => ({
    ok: true,
    applied: r.map((x) => x.name),
    report: pendingFor(files, r),
    tracked: true,
  });

  it('groups tenants by version, names failures, drift, never-migrated and unreachable targets', () => {
    const plan = planTargets([
      ...['a', 'b', 'c'].map((s) => tenant(s, 'schema')),
      tenant('d', 'schema'),
      tenant('e', 'schema'),
      tenant('f', 'schema'),
      tenant('g', 'database', 'eu1'),
      tenant('p1', 'pool'),
      tenant('p2', 'pool'),
      tenant('x', 'schema', 'us1', 'provisioning'),
    ]);
    const byId = (slug: string) => plan.targets.find((t) => t.tenants.some((x) => x.slug === slug))!;
    const all = ['0001_a', '0002_b', '0003_c'];
    const targets = [
      statusOf(byId('a'), state(rows('t_a', all))),
      statusOf(byId('b'), state(rows('t_b', all, { '0002_b': 'edited' }))),
      statusOf(byId('c'), state(rows('t_c', ['0001_a', '0002_b']))),
      statusOf(byId('d'), state(rows('t_d', ['0001_a', '0002_b'])), { run: 7, status: 'failed', error: { code: 'MIGRATION_FAILED' } }),
      statusOf(byId('e'), state([])),
      statusOf(byId('f'), state(rows('t_f', [...all, '0004_newer']))),
      statusOf(byId('g'), { ok: false, error: { code: 'UNREACHABLE', message: 'shard eu1 is unreachable' } }),
      statusOf(byId('p1'), state(rows('app', all))),
    ];
    const doc = statusDocument(targets, plan.skipped, '0003_c');
    expect(doc.groups.map((g) => g.label)).toEqual([
      '3 at 0003_c (head)',
      '1 at 0002_b (1 pending)',
      '1 failed (last run failed; still pending)',
      '1 never migrated',
      '1 drifted (applied migrations changed since)',
      '1 ahead of these files (migrations applied there have no file here)',
      '1 unreachable',
    ]);
    expect(doc.summary).toEqual({
      tenants: 9,
      targets: 8,
      upToDate: 2,
      pending: 1,
      neverMigrated: 1,
      failed: 1,
      drift: 1,
      ahead: 1,
      unreachable: 1,
      unknown: 1,
      skipped: 1,
    });
    expect(doc.ok).toBe(false);
    expect(targets[1]).toMatchObject({ condition: 'drift', drift: [{ migration: '0002_b', appliedChecksum: 'edited' }] });
    expect(targets[3]).toMatchObject({ condition: 'failed', version: '0002_b', lastRun: { run: 7 } });
    // Ahead of the folder (a migration applied there has no file here): flagged, and not ok.
    expect(targets[5]).toMatchObject({ condition: 'ahead', unknown: ['0004_newer'], version: '0004_newer' });
  });

  it('is ok when every target is at head; a failed last run that was fixed since does not count', () => {
    const plan = planTargets([tenant('a', 'schema'), tenant('b', 'schema')]);
    const all = ['0001_a', '0002_b', '0003_c'];
    const doc = statusDocument(
      [
        statusOf(plan.targets[0], state(rows('t_a', all))),
        statusOf(plan.targets[1], state(rows('t_b', all)), { run: 3, status: 'failed' }),
      ],
      [],
      '0003_c',
    );
    expect(doc.ok).toBe(true);
    expect(doc.groups.map((g) => g.label)).toEqual(['2 at 0003_c (head)']);
  });

  it('versionOf and nothingToDo', () => {
    expect(versionOf(['0002_b', '0010_j', '0003_c'])).toBe('0010_j');
    expect(versionOf([])).toBeNull();
    expect(nothingToDo(state(rows('t', ['0001_a', '0002_b', '0003_c'])))).toBe(true);
    expect(nothingToDo(state(rows('t', ['0001_a'])))).toBe(false);
    expect(nothingToDo({ ok: false, error: { code: 'UNREACHABLE', message: 'x' } })).toBe(false);
    expect(nothingToDo(undefined)).toBe(false);
  });
});
