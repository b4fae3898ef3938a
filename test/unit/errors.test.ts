import { describe, expect, it } from 'vitest';
import { ERROR_CODES, errorMessage, EXIT, exitFor, hintFor, LockedError, TenantctlError, UsageError } from '../../src/errors.js';

describe('the error vocabulary', () => {
  it('gives every code an exit code from EXIT and a hint', () => {
    const exits = new Set<number>(Object.values(EXIT));
    for (const [code, info] of Object.entries(ERROR_CODES)) {
      expect(exits.has(info.exit), code).toBe(true);
      expect(info.hint.length, code).toBeGreaterThan(10);
    }
    // The codes result rows carry are in it too, not free strings.
    expect(Object.keys(ERROR_CODES)).toEqual(expect.arrayContaining(['NOT_RUN', 'GONE', 'TIMEOUT', 'MIGRATION_FAILED', 'DRIFT']));
  });

  it('takes the exit code from the code unless the thrower says otherwise', () => {
    expect(new TenantctlError('DEV_FAILED', 'x').exitCode).toBe(EXIT.failed);
    expect(new TenantctlError('INTERRUPTED', 'x').exitCode).toBe(EXIT.interrupted);
    expect(new TenantctlError('UNREACHABLE', 'x', undefined, EXIT.failed).exitCode).toBe(EXIT.failed);
    expect(new UsageError('DRIFT', 'x').exitCode).toBe(EXIT.usage);
    expect(new LockedError('x').exitCode).toBe(EXIT.locked);
    expect(exitFor('LOCKED')).toBe(EXIT.locked);
    expect(hintFor('NEEDS_YES')).toMatch(/--yes/);
  });
});

describe('errorMessage', () => {
  it("says what a lock wait that ran out means, which PostgreSQL's words do not", () => {
    const pgErr = Object.assign(new Error('canceling statement due to lock timeout'), { code: '55P03' });
    expect(errorMessage(pgErr)).toMatch(/^canceling statement due to lock timeout: another session held a lock .* run the command again/);
    expect(errorMessage(new Error('other'))).toBe('other');
  });
});
