import { describe, expect, it } from 'vitest';
import { isRecordHash, recordDigestQuery } from '../../src/copy/record-digest.js';

const config = { tenantKey: { column: 'tenant_id', type: 'uuid' } } as never;
const table = { table: 'Tasks', keyColumn: 'tenant_id', columns: ['tenant_id', 'id', 'title "x"', 'state', 'price', 'due'], keyIndex: 0 };
const types = new Map<string, string | null>([
  ['tenant_id', 'uuid'],
  ['id', 'uuid'],
  ['title "x"', 'text'],
  ['state', null],
  ['price', 'numeric'],
  ['due', 'timestamptz'],
]);

describe('recordDigestQuery', () => {
  it('hashes every column but the key by value, text under "C", anything else (an enum, a numeric) as its text', () => {
    const q = recordDigestQuery(table, { model: 'schema', schema: 't_acme', key: 'k' }, config, types);
    expect(q).toContain(
      'hash_record_extended(row("id", "title ""x""" collate "C", ("state"::text) collate "C", ("price"::text) collate "C", "due"), 0)',
    );
    expect(q).not.toContain('"tenant_id"');
    expect(q).toContain('from "t_acme"."Tasks" offset 0)');
    // Each row's 64-bit hash mixed before the sums (a plain sum would not see values swapped between rows).
    expect(q).toContain('sum(hashint8extended(h, h))');
  });

  it('filters by the key in a pool; a table of only the key column is measured by its count', () => {
    const pool = recordDigestQuery(table, { model: 'pool', schema: 'app', key: "k'1" }, config, types);
    expect(pool).toContain(`from "app"."Tasks" where "tenant_id" = 'k''1'::uuid`);
    const only = recordDigestQuery({ ...table, columns: ['tenant_id'] }, { model: 'schema', schema: 's', key: 'k' }, config, types);
    expect(only).toContain('select 0::int8 as h from');
  });

  it('its hashes say what they are (rowDigest measures a recorded one the same way)', () => {
    expect(isRecordHash('rec:3:12:-4')).toBe(true);
    expect(isRecordHash('3:12:-4')).toBe(false);
  });
});
