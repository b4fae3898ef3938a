import { describe, expect, it } from 'vitest';
import { TransactionsText } from '../../src/migrate/apply-text.js';
import type { MigrationFile } from '../../src/migrate/files.js';

const file = { id: '0004_col', checksum: 'ab12', kind: 'sql', transaction: true } as unknown as MigrationFile;
const text = (timed: boolean) => new TransactionsText([file], () => 'alter table t add column c int', '', timed).append('', 't_acme');

describe('TransactionsText: the tracking row of a target', () => {
  it('leaves duration_ms to the table default when the table measures it (timed), and names it otherwise', () => {
    expect(text(true)).toContain(
      `insert into "tenantctl"."schema_migrations" (target_schema, name, checksum) values ('t_acme', '0004_col', 'ab12'); commit;`,
    );
    expect(text(true)).not.toContain('duration_ms');
    expect(text(false)).toContain('(target_schema, name, checksum, duration_ms)');
    expect(text(false)).toContain('(extract(epoch from clock_timestamp() - now()) * 1000)::int); commit;');
  });
});
