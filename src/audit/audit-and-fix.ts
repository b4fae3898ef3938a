import { applyFixes, type FixResult } from './fix.js';
import { runAudit, type AuditDeps, type AuditOptions, type AuditReport } from './run.js';

export interface AuditOutcome {
  /** The audit (with fixes applied: the re-audit after them). */
  report: AuditReport;
  /** With fix: what was applied ([] when nothing was fixable). */
  fixes?: FixResult[];
  /** With fix and something applied: the audit before the fixes. */
  before?: AuditReport;
}

/**
 * `tenantctl audit`, the core: audit; with `fix`, ask `confirm` (the command's prompt or --yes)
 * before applying the fixable findings, then audit again so the report shows what is left.
 *
 * @example
 *   const { report, fixes } = await auditAndFix(deps, opts, { fix: true, confirm: async () => {} });
 */
export async function auditAndFix(
  deps: AuditDeps,
  opts: AuditOptions,
  fix?: { confirm: (what: string) => Promise<void>; onApplied?: (applied: number) => void },
): Promise<AuditOutcome> {
  const report = await runAudit(deps, opts);
  if (!fix) return { report };
  const fixable = report.findings.filter((f) => f.fixable);
  if (fixable.length === 0) return { report, fixes: [] };
  await fix.confirm(`apply ${fixable.length} fix(es) to the fleet`);
  const fixes = await applyFixes(deps.fleet, fixable, deps.config);
  fix.onApplied?.(fixes.filter((f) => f.status === 'applied').length);
  return { report: await runAudit(deps, opts), fixes, before: report };
}
