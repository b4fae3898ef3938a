import { describe, expect, it } from 'vitest';
import { sqlDigestQuery } from '../../src/copy/sql-digest.js';

const config = { tenantKey: { column: 'tenant_id', type: 'uuid' } } as never;
const table = { table: 'Tasks', keyColumn: 'tenant_id', columns: ['tenant_id', 'id', 'title "x"'], keyIndex: 0 };

describe('sqlDigestQuery', () => {
  it('hashes every column but the key, quoted, and filters by the key only in a pool', () => {
    const pool = sqlDigestQuery(table, { model: 'pool', schema: 'app', key: "k'1" }, config);
    expect(pool).toContain('row("id", "title ""x""")::text');
    expect(pool).not.toContain('row("tenant_id"');
    expect(pool).toContain(`from "app"."Tasks" where "tenant_id" = 'k''1'::uuid`);
    const schema = sqlDigestQuery(table, { model: 'schema', schema: 't_acme', key: 'k' }, config);
    expect(schema).toContain('from "t_acme"."Tasks" offset 0)');
    expect(schema).not.toContain('where');
  });

  it('a table of only the key column is measured by its count', () => {
    const q = sqlDigestQuery(
      { table: 't', keyColumn: 'tenant_id', columns: ['tenant_id'], keyIndex: 0 },
      { model: 'schema', schema: 's', key: 'k' },
      config,
    );
    expect(q).toContain(`select '' as r from`);
  });
});
