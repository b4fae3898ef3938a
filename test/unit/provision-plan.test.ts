import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { planTenant } from '../../src/provision/plan.js';
import { slugProblem } from '../../src/placement/slug.js';
import { topoOrder } from '../../src/placement/scoped-tables.js';

const config = parseConfig(readFileSync(new URL('../../tenants.config.yaml', import.meta.url), 'utf8'), '/repo/tenants.config.yaml', {});
const none = new Map<string, number>();

describe('planTenant (where a new tenant goes)', () => {
  it('takes the model from the tier, the default region and its least-loaded shard', () => {
    const p = planTenant(
      config,
      { slug: 'acme', tier: 'standard' },
      new Map([
        ['us1', 5],
        ['us2', 2],
      ]),
    );
    expect(p).toMatchObject({
      model: 'schema',
      region: 'us-east',
      shard: 'us2',
      placement: { database: 'tenant_schemas', schema: 't_acme' },
    });
  });

  it('breaks ties by shard name, so the choice is deterministic', () => {
    expect(planTenant(config, { slug: 'acme' }, none).shard).toBe('us1');
  });

  it('lets --model override the tier, and derives the region from --shard', () => {
    const p = planTenant(config, { slug: 'big-co', tier: 'free', model: 'database', shard: 'eu1' }, none);
    expect(p).toMatchObject({
      model: 'database',
      region: 'eu-west',
      shard: 'eu1',
      residency: 'eu',
      placement: { database: 't_big_co', schema: 'app' },
    });
  });

  it('refuses a region that breaks the residency, naming the regions that keep it', () => {
    expect(() => planTenant(config, { slug: 'x', residency: 'eu', region: 'us-east' }, none)).toThrow(/breaks residency "eu"/);
    expect(planTenant(config, { slug: 'x', residency: 'eu', region: 'eu-west' }, none).shard).toBe('eu1');
  });

  it('refuses a shard outside the given region, and unknown names with the choices', () => {
    expect(() => planTenant(config, { slug: 'x', region: 'eu-west', shard: 'us1' }, none)).toThrow(/in region us-east, not eu-west/);
    expect(() => planTenant(config, { slug: 'x', tier: 'gold' }, none)).toThrow(/unknown tier "gold"/);
    expect(() => planTenant(config, { slug: 'x', model: 'cluster' }, none)).toThrow(/unknown model "cluster"/);
    expect(() => planTenant(config, { slug: 'x', key: 'not-a-uuid' }, none)).toThrow(/not a valid uuid/);
  });

  it('stores a given key as PostgreSQL prints it back, so one key is never two tenants (007 and 7; a uuid in upper case)', () => {
    const upper = '0B0C0D0E-0000-4000-8000-00000000000A';
    expect(planTenant(config, { slug: 'x', key: upper }, none).key).toBe(upper.toLowerCase());
    const big = { ...config, tenantKey: { ...config.tenantKey, type: 'bigint' as const } };
    expect(planTenant(big, { slug: 'x', key: '007' }, none).key).toBe('7');
    expect(planTenant(big, { slug: 'x', key: '-0' }, none).key).toBe('0');
    expect(planTenant(big, { slug: 'x', key: '123456789012345678' }, none).key).toBe('123456789012345678');
    const text = { ...config, tenantKey: { ...config.tenantKey, type: 'text' as const } };
    expect(planTenant(text, { slug: 'x', key: 'Acme' }, none).key).toBe('Acme');
  });
});

describe('slugs', () => {
  it.each([
    ['acme', null],
    ['a-1', null],
    ['Acme', /upper case/],
    ['1acme', /starts with a digit/],
    ['a'.repeat(41), /41 characters/],
    ['a_b', /only lowercase letters, digits and hyphens/],
    ['a--b', /hyphen/],
    ['public', /reserved/],
    ['pg-x', /reserved/],
  ])('%j', (slug, problem) => {
    const p = slugProblem(slug);
    if (problem === null) expect(p).toBeNull();
    else expect(p).toMatch(problem);
  });
});

describe('topoOrder (tables parents first)', () => {
  it('puts referenced tables before the tables referencing them', () => {
    const edges = [
      { child: 'comments', parent: 'tasks' },
      { child: 'tasks', parent: 'projects' },
      { child: 'projects', parent: 'workspaces' },
      { child: 'users', parent: 'workspaces' },
      { child: 'comments', parent: 'users' },
    ];
    const order = topoOrder(['comments', 'projects', 'tasks', 'users', 'workspaces'], edges);
    for (const e of edges) expect(order.indexOf(e.parent), `${e.parent} before ${e.child}`).toBeLessThan(order.indexOf(e.child));
  });

  it('keeps tables in a cycle instead of dropping them', () => {
    expect(
      topoOrder(
        ['a', 'b'],
        [
          { child: 'a', parent: 'b' },
          { child: 'b', parent: 'a' },
        ],
      ).sort(),
    ).toEqual(['a', 'b']);
  });
});
