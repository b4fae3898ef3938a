import { describe, expect, it } from 'vitest';
import { antiJoinSql, lockParentsSql, type ForeignKey } from '../../src/copy/fk-check-sql.js';
import { referencesOwnRows } from '../../src/copy/fk-check.js';

const fk = (o: Partial<ForeignKey> = {}): ForeignKey => ({
  name: 'tasks_status_fkey',
  schema: 'app',
  table: 'tasks',
  columns: ['status'],
  parentSchema: 'app',
  parentTable: 'task_statuses',
  parentColumns: ['code'],
  match: 's',
  ...o,
});
const scope = { keyColumn: 'tenant_id', keyType: 'uuid' };

describe('antiJoinSql (one proof per foreign key, scoped to the tenant)', () => {
  it('single column, MATCH SIMPLE: the tenant key as $1, NULLs unchecked, first offender answered', () => {
    expect(antiJoinSql(fk(), scope)).toBe(
      'select row(c."status")::text as key from "app"."tasks" c where c."tenant_id" = $1::uuid and c."status" is not null' +
        ' and (not exists (select 1 from "app"."task_statuses" p where p."code" = c."status")) limit 1',
    );
  });

  it('multi-column: every column paired by position, every one must be non-NULL to be checked', () => {
    const sql = antiJoinSql(
      fk({ table: 'projects', columns: ['tenant_id', 'owner_id'], parentTable: 'users', parentColumns: ['tenant_id', 'id'] }),
      scope,
    );
    expect(sql).toContain('c."tenant_id" is not null and c."owner_id" is not null');
    expect(sql).toContain('where p."tenant_id" = c."tenant_id" and p."id" = c."owner_id")');
    expect(sql).toContain('row(c."tenant_id", c."owner_id")::text');
  });

  it('MATCH FULL: all NULL unchecked, some NULL a violation by itself', () => {
    const sql = antiJoinSql(fk({ columns: ['a', 'b'], parentColumns: ['x', 'y'], match: 'f' }), scope);
    expect(sql).toContain('num_nonnulls(c."a", c."b") > 0');
    expect(sql).toContain(
      '(num_nulls(c."a", c."b") > 0 or not exists (select 1 from "app"."task_statuses" p where p."x" = c."a" and p."y" = c."b"))',
    );
    expect(sql).not.toContain('is not null');
  });

  it('quotes every identifier, hostile ones included', () => {
    const sql = antiJoinSql(
      fk({ schema: 'we"ird', table: 'Tab le', columns: ['c"1'], parentSchema: 'o;ther', parentTable: 'P', parentColumns: ['k"'] }),
      { keyColumn: 'ten"ant', keyType: 'bigint' },
    );
    expect(sql).toContain('from "we""ird"."Tab le" c where c."ten""ant" = $1::bigint and c."c""1" is not null');
    expect(sql).toContain('from "o;ther"."P" p where p."k""" = c."c""1"');
  });
});

describe('lockParentsSql (FOR KEY SHARE on the referenced rows)', () => {
  it('locks only the parent rows the tenant references, counting them', () => {
    expect(lockParentsSql(fk(), scope)).toBe(
      'select count(*)::int as n from (select 1 from "app"."task_statuses" p where exists (select 1 from "app"."tasks" c' +
        ' where c."tenant_id" = $1::uuid and p."code" = c."status") for key share of p) locked',
    );
  });
});

describe('referencesOwnRows (which parents need no lock)', () => {
  const tables = new Map(
    [
      { table: 'workspaces', keyColumn: 'id' },
      { table: 'users', keyColumn: 'tenant_id' },
      { table: 'projects', keyColumn: 'tenant_id' },
    ].map((t) => [t.table, { ...t, columns: [], keyIndex: 0 }]),
  );
  it("a tenant table's parent through the key column: the tenant's own rows, just loaded", () => {
    expect(
      referencesOwnRows(fk({ table: 'users', columns: ['tenant_id'], parentTable: 'workspaces', parentColumns: ['id'] }), tables),
    ).toBe(true);
    expect(
      referencesOwnRows(
        fk({ table: 'projects', columns: ['tenant_id', 'owner_id'], parentTable: 'users', parentColumns: ['tenant_id', 'id'] }),
        tables,
      ),
    ).toBe(true);
  });
  it('a shared table, a parent in another schema, or a reference not through the key: locked', () => {
    expect(referencesOwnRows(fk(), tables)).toBe(false);
    expect(
      referencesOwnRows(
        fk({ table: 'users', columns: ['tenant_id'], parentSchema: 'other', parentTable: 'workspaces', parentColumns: ['id'] }),
        tables,
      ),
    ).toBe(false);
    expect(referencesOwnRows(fk({ table: 'projects', columns: ['owner_id'], parentTable: 'users', parentColumns: ['id'] }), tables)).toBe(
      false,
    );
  });
});
