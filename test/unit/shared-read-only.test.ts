import { describe, expect, it } from 'vitest';
import { mentionsReadOnlyShared, readOnlySharedSql } from '../../src/placement/shared-read-only.js';

const config = {
  tenantKey: {
    column: 'tenant_id',
    type: 'uuid' as const,
    tables: {},
    shared: { task_statuses: 'read' as const, notes: 'write' as const },
  },
};

describe('read-only shared tables in a placement of its own', () => {
  it('a migration that names one as a word gets the revoke; a longer name or a write-declared one does not', () => {
    expect(mentionsReadOnlyShared('create table task_statuses (code text)', config)).toBe(true);
    expect(mentionsReadOnlyShared('CREATE TABLE "TASK_STATUSES" ()', config)).toBe(true);
    expect(mentionsReadOnlyShared('create table task_statuses_old ()', config)).toBe(false);
    expect(mentionsReadOnlyShared('create table notes ()', config)).toBe(false);
  });

  it('revokes the writes on the read-only ones only, by a literal schema name', () => {
    const sql = readOnlySharedSql("t_o'brien", config);
    expect(sql).toContain("n.nspname = 't_o''brien'");
    expect(sql).toContain("array['task_statuses']::text[]");
    expect(sql).not.toContain('notes');
    expect(readOnlySharedSql('t_x', { tenantKey: { ...config.tenantKey, shared: { notes: 'write' as const } } })).toBe('');
  });
});
