import { describe, expect, it } from 'vitest';
import { exitCodeForRefusals, resultDocument, type TenantResult } from '../../src/fanout/result.js';

const ok: TenantResult = { tenant: 'a', status: 'succeeded' } as TenantResult;
const usage = (code: string) => code === 'BAD_ARCHIVE';

describe('resultDocument', () => {
  it('says interrupted (and not ok) when Ctrl-C stopped a tenant at its clean point, with exit 130', () => {
    const stopped = { tenant: 'b', status: 'failed', error: { code: 'INTERRUPTED', message: 'interrupted in copy' } } as TenantResult;
    const doc = resultDocument('backup create', [ok, stopped], Date.now());
    expect(doc).toMatchObject({ ok: false, interrupted: true, summary: { succeeded: 1, failed: 1 } });
    expect(exitCodeForRefusals(doc, usage)).toBe(130);
  });

  it('says interrupted when tenants never started because of it', () => {
    const never = { tenant: 'c', status: 'skipped', reason: 'interrupted' } as TenantResult;
    const doc = resultDocument('backup create', [ok, never], Date.now());
    expect(doc).toMatchObject({ ok: false, interrupted: true });
    expect(exitCodeForRefusals(doc, usage)).toBe(130);
  });

  it('has no interrupted field otherwise; a skip for another reason stays ok', () => {
    const gone = { tenant: 'd', status: 'skipped', reason: 'gone: the tenant was deleted during the run' } as TenantResult;
    const doc = resultDocument('backup create', [ok, gone], Date.now());
    expect(doc.ok).toBe(true);
    expect('interrupted' in doc).toBe(false);
    expect(exitCodeForRefusals(doc, usage)).toBe(0);
  });

  it("a command's own field wins (migrate up says interrupted itself)", () => {
    const never = { tenant: 'c', status: 'skipped', reason: 'interrupted' } as TenantResult;
    expect(resultDocument('migrate up', [never], Date.now(), { interrupted: true }).interrupted).toBe(true);
  });
});
