import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { planTenant } from '../../src/provision/plan.js';
import { resumeConflicts } from '../../src/provision/resume-check.js';
import type { TenantRow } from '../../src/catalog/tables.js';

const config = parseConfig(readFileSync(new URL('../../tenants.config.yaml', import.meta.url), 'utf8'), '/repo/tenants.config.yaml', {});

describe('placement with shards found down', () => {
  it('passes over a down shard for the next least-loaded one of the region', () => {
    const load = new Map([
      ['us1', 5],
      ['us2', 2],
    ]);
    expect(planTenant(config, { slug: 'acme' }, load).shard).toBe('us2');
    expect(planTenant(config, { slug: 'acme' }, load, new Set(['us2'])).shard).toBe('us1');
  });

  it('exit 2 naming the region when no shard of it answers', () => {
    expect(() => planTenant(config, { slug: 'acme', region: 'us-east' }, new Map(), new Set(['us1', 'us2']))).toThrow(
      /no shard of region us-east answers \(us1, us2 unreachable\)/,
    );
  });
});

describe('resumeConflicts (a re-run of a failed tenant)', () => {
  const row = {
    slug: 'acme',
    key: 'k',
    name: 'acme',
    tier: 'enterprise',
    model: 'database',
    region: 'us-east',
    shard: 'us1',
    status: 'failed',
    residency: null,
    database_name: 't_acme',
    schema_name: 'app',
  } as unknown as TenantRow;

  it('no flags, or the recorded ones: nothing conflicts', () => {
    expect(resumeConflicts(config, row, { slug: 'acme' })).toEqual([]);
    expect(resumeConflicts(config, row, { slug: 'acme', region: 'us-east', shard: 'us1', model: 'database', tier: 'enterprise' })).toEqual(
      [],
    );
  });

  it('names every flag that asks for another placement', () => {
    expect(resumeConflicts(config, row, { slug: 'acme', region: 'eu-west', residency: 'eu', tier: 'free' })).toEqual([
      '--tier free (recorded: enterprise)',
      'tier free means model pool (recorded: database)',
      '--region eu-west (recorded: us-east)',
      '--residency eu (recorded region us-east has residency unset)',
    ]);
  });
});
