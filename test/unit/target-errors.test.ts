import { describe, expect, it } from 'vitest';
import type { MigrationFile } from '../../src/migrate/files.js';
import { toTargetError } from '../../src/migrate/target-errors.js';

const ctx = (deadlineBound: boolean) => ({ id: 'us1/tenant_schemas/t_acme', deadlineBound, markBroken: () => undefined });
const m = { id: '0023_projects_color', transactional: true } as MigrationFile;
const cancelled = (message: string) => Object.assign(new Error(message), { code: '57014' });

describe('a statement cancelled in a migration', () => {
  it('by migrations.statementTimeout is TIMEOUT naming that setting, not a generic failure', () => {
    const e = toTargetError(cancelled('canceling statement due to statement timeout'), m, ctx(false));
    expect(e).toMatchObject({ code: 'TIMEOUT', pgCode: '57014', migration: '0023_projects_color' });
    expect(e.message).toMatch(/ran longer than migrations\.statementTimeout/);
    expect(e.hint).toMatch(/^raise migrations\.statementTimeout, or split the statement into batches; 0023_projects_color was rolled back/);
  });

  it("by the target's deadline is TIMEOUT naming migrations.targetTimeout", () => {
    const e = toTargetError(cancelled('canceling statement due to statement timeout'), m, ctx(true));
    expect(e).toMatchObject({ code: 'TIMEOUT', message: expect.stringMatching(/ran longer than migrations\.targetTimeout/) });
  });

  it('by someone else (pg_cancel_backend) stays a failed migration', () => {
    expect(toTargetError(cancelled('canceling statement due to user request'), m, ctx(false)).code).toBe('MIGRATION_FAILED');
  });
});
