import { Command, InvalidArgumentError } from 'commander';
import { describe, expect, it } from 'vitest';
import { LATEST_CATALOG_MIGRATION } from '../../src/catalog/migrations.js';
import { assertLoadableSchema, OLDEST_RESTORABLE_CATALOG } from '../../src/catalog-backup/restore.js';
import { addSelectorOptions, selectorList } from '../../src/cli/options.js';
import { refuseRepeatedValues } from '../../src/cli/repeated-options.js';
import { cli } from '../helpers/cli.js';
import { UsageError } from '../../src/errors.js';
import { unreachable } from '../../src/fleet/shard-connections.js';
import { checkPartitionKey, MAX_PARTITION_KEY, selectorText, splitKey } from '../../src/migrate/partition-agree.js';

/**
 * Inputs an operator or a CI job gets wrong in ways that used to read as something else: an
 * empty selector (an unset variable) as "every tenant", a partition key too long for the
 * catalog's index as an INTERNAL error, the same selection spelt in another order as another
 * matrix, and a catalog backup from before an upgrade as unrestorable.
 */
describe('selector flags', () => {
  it('take comma-separated values, trimmed, accumulated over repeats', () => {
    expect(selectorList('a, b')).toEqual(['a', 'b']);
    expect(selectorList('c', ['a', 'b'])).toEqual(['a', 'b', 'c']);
  });

  it('refuse an empty value or an empty item (an unset variable would select the whole fleet)', () => {
    for (const v of ['', ' ', ',', 'pool,', ',pool', 'a,,b']) {
      expect(() => selectorList(v), JSON.stringify(v)).toThrow(InvalidArgumentError);
    }
    expect(() => selectorList('')).toThrow(/empty value.*leave the option out to select every tenant/);
  });
});

describe('partition keys and the selection a split is recorded for', () => {
  it('a key is 1 to MAX_PARTITION_KEY characters', () => {
    expect(checkPartitionKey('github:acme/app#42', '--partition-key')).toBe('github:acme/app#42');
    expect(checkPartitionKey('k'.repeat(MAX_PARTITION_KEY), '--partition-key')).toHaveLength(MAX_PARTITION_KEY);
    for (const bad of ['', '  ', 'k'.repeat(MAX_PARTITION_KEY + 1)]) {
      const err = (() => {
        try {
          checkPartitionKey(bad, '--partition-key');
        } catch (e) {
          return e;
        }
      })();
      expect(err).toBeInstanceOf(UsageError);
      expect((err as UsageError).exitCode).toBe(2);
      expect((err as UsageError).message).toMatch(/^--partition-key must be 1 to 200 characters, got/);
    }
  });

  it('the same selection gives the same text whatever the order of flags and values; another selection another', () => {
    const a = selectorText({ region: ['eu-west', 'us-east'], model: ['schema'] });
    const b = selectorText({ model: ['schema'], region: ['us-east', 'eu-west', 'us-east'], tenants: [], tier: undefined });
    expect(a).toBe(b);
    expect(a).toBe('{"model":["schema"],"region":["eu-west","us-east"]}');
    expect(selectorText({})).toBe('{}');
    expect(selectorText({ region: ['eu-west'] })).not.toBe(selectorText({}));
  });

  it('without a key, the split is recorded under the head and a digest of the selection: short whatever the selection', () => {
    const many = selectorText({ tenants: Array.from({ length: 10_000 }, (_, i) => `tenant-with-a-long-slug-${i}`) });
    expect(many.length).toBeGreaterThan(250_000);
    const key = splitKey({ head: '0042_add_index' }, many);
    expect(key).toMatch(/^head 0042_add_index [0-9a-f]{16}$/);
    expect(splitKey({ head: '0042_add_index' }, selectorText({}))).not.toBe(key);
    expect(splitKey({ head: '0043_next' }, many)).not.toBe(key);
    expect(splitKey({ key: 'github:acme/app#42', head: '0042_add_index' }, many)).toBe('github:acme/app#42');
  });
});

describe('catalog backups across an upgrade', () => {
  it("load from OLDEST_RESTORABLE_CATALOG up to this tenantctl's catalog; older and newer are refused naming both", () => {
    expect(OLDEST_RESTORABLE_CATALOG <= LATEST_CATALOG_MIGRATION).toBe(true);
    expect(() => assertLoadableSchema(LATEST_CATALOG_MIGRATION, 'catalog backup x')).not.toThrow();
    expect(() => assertLoadableSchema(OLDEST_RESTORABLE_CATALOG, 'catalog backup x')).not.toThrow();
    expect(() => assertLoadableSchema('0009_migrate_targets_unchecked', 'catalog backup x')).toThrow(
      /catalog backup x is of catalog schema 0009_migrate_targets_unchecked; this tenantctl's catalog is 0011_migrate_partition_selector and loads backups from 0010_migrate_target_last on/,
    );
    expect(() => assertLoadableSchema('9999_newer', 'catalog backup x')).toThrow(UsageError);
  });
});

describe('a shard that refuses the login', () => {
  const shard = { name: 'us1', url: 'postgres://tenantctl:s3cret@db.example:5432/postgres' } as Parameters<typeof unreachable>[0];
  it('is told apart from a server that does not run, and the password is never printed', () => {
    const refused = unreachable(
      shard,
      'tenant_pool',
      Object.assign(new Error('password authentication failed for user "tenantctl"'), { code: '28P01' }),
    );
    expect(refused.hint).toMatch(/refused the login: check the user and password in shard us1's url/);
    const down = unreachable(
      shard,
      'tenant_pool',
      Object.assign(new Error('connect ECONNREFUSED 10.0.0.1:5432'), { code: 'ECONNREFUSED' }),
    );
    expect(down.hint).toMatch(/check that shard us1 is running/);
    for (const e of [refused, down]) expect(`${e.message} ${e.hint}`).not.toContain('s3cret');
  });
});

describe('a value flag given twice', () => {
  const program = () => {
    const p = new Command('t').exitOverride().configureOutput({ writeErr: () => undefined });
    addSelectorOptions(p.command('run').option('--partition <i/n>').option('--yes').exitOverride()).action(() => undefined);
    refuseRepeatedValues(p);
    return p;
  };

  it('is refused, naming both values, where commander would keep the last one silently', () => {
    expect(() => program().parse(['run', '--partition', '1/2', '--partition', '2/2'], { from: 'user' })).toThrow(
      /option '--partition <i\/n>' was given 2 times \("1\/2", "2\/2"\); it takes one value: give --partition once/,
    );
  });

  it('a selector adds up and a switch may repeat', () => {
    const p = program();
    p.parse(['run', '--tenant', 'a', '--tenant', 'b,c', '--yes', '--yes', '--partition', '1/2'], { from: 'user' });
    expect(p.commands[0].opts()).toEqual({ tenant: ['a', 'b', 'c'], yes: true, partition: '1/2' });
  });

  it('the CLI exits 2 before it reads any config', async () => {
    const r = await cli(['tenant', 'create', 'x', '--name', 'a', '--name', 'b', '--config', '/nonexistent.yaml']);
    expect([r.code, r.stderr]).toEqual([2, expect.stringMatching(/option '--name <name>' was given 2 times/)]);
  });
});
