import type { AuditReport } from '../audit/run.js';
import { atOrAbove, countBySeverity } from '../audit/run.js';
import type { FixResult } from '../audit/fix.js';
import type { Severity } from '../audit/types.js';
import type { Output } from './output.js';
import { renderTable } from './table.js';

export interface AuditDocument {
  command: 'audit';
  ok: boolean;
  failOn: Severity;
  summary: {
    tenants: number;
    units: number;
    unitsFailed: number;
    findings: number;
    bySeverity: Record<Severity, number>;
    atOrAboveFailOn: number;
    durationMs: number;
    connections: AuditReport['connections'];
  };
  findings: AuditReport['findings'];
  units: AuditReport['units'];
  fixes?: FixResult[];
  /** With --fix: the findings before the fixes were applied (findings are the re-audit's). */
  before?: { findings: number; bySeverity: Record<Severity, number> };
}

/** The audit's result document; ok when no finding is at or above failOn and every unit ran. */
export function auditDocument(
  report: AuditReport,
  failOn: Severity,
  extra: { fixes?: FixResult[]; before?: AuditReport } = {},
): AuditDocument {
  const failed = report.units.filter((u) => u.status === 'failed').length;
  const gate = atOrAbove(report.findings, failOn).length;
  return {
    command: 'audit',
    ok: gate === 0 && failed === 0,
    failOn,
    summary: {
      tenants: report.tenants,
      units: report.units.length,
      unitsFailed: failed,
      findings: report.findings.length,
      bySeverity: countBySeverity(report.findings),
      atOrAboveFailOn: gate,
      durationMs: report.durationMs,
      connections: report.connections,
    },
    findings: report.findings,
    units: report.units,
    ...(extra.fixes ? { fixes: extra.fixes } : {}),
    ...(extra.before ? { before: { findings: extra.before.findings.length, bySeverity: countBySeverity(extra.before.findings) } } : {}),
  };
}

/** --json: the document; otherwise findings grouped by severity then tenant, and a summary. */
export function renderAudit(out: Output, doc: AuditDocument): void {
  if (out.json) {
    out.document(doc);
    return;
  }
  const paint = { critical: out.color.red.bold, high: out.color.red, medium: out.color.yellow, low: out.color.dim } as const;
  for (const sev of ['critical', 'high', 'medium', 'low'] as const) {
    const list = doc.findings.filter((f) => f.severity === sev);
    if (list.length === 0) continue;
    out.print(paint[sev](`${sev.toUpperCase()} (${list.length})`));
    out.print(
      renderTable(
        out,
        ['tenant', 'check', 'where', 'object', 'message'],
        list.map((f) => [f.tenant ?? '-', f.check, `${f.shard}/${f.database}`, f.object, f.message]),
      ),
    );
    const fixes = list.filter((f) => f.fix);
    if (fixes.length) {
      out.print(out.color.dim(`fix SQL (${fixes.filter((f) => f.fixable).length} applied by audit --fix):`));
      for (const f of fixes)
        out.print(
          out.color.dim(`-- ${f.check} ${f.shard}/${f.database} ${f.object}${f.fixable ? '' : ' (not applied by --fix)'}\n${f.fix}`),
        );
    }
    out.print('');
  }
  for (const u of doc.units.filter((x) => x.status !== 'succeeded'))
    out.print(out.color.red(`${u.status}: ${u.target} ${u.error?.message ?? u.reason ?? ''}`));
  if (doc.fixes) {
    const applied = doc.fixes.filter((f) => f.status === 'applied').length;
    out.print(
      `fixes: ${applied} applied, ${doc.fixes.length - applied} failed${doc.before ? ` (before: ${doc.before.findings} findings)` : ''}`,
    );
    for (const f of doc.fixes.filter((x) => x.status === 'failed'))
      out.print(out.color.red(`fix failed: ${f.check} ${f.object}: ${f.error}`));
  }
  const s = doc.summary;
  const conns = Object.entries(s.connections)
    .map(([k, v]) => `${k} ${v.peak}/${v.budget}`)
    .join(', ');
  const line =
    `audit: ${s.findings} finding(s) (${Object.entries(s.bySeverity)
      .map(([k, v]) => `${v} ${k}`)
      .join(', ')}) over ${s.tenants} tenant(s) in ${s.units} unit(s)` +
    `${s.unitsFailed ? `, ${s.unitsFailed} unit(s) failed` : ''}; ${s.atOrAboveFailOn} at or above ${doc.failOn}; ${(s.durationMs / 1000).toFixed(1)}s; peak connections ${conns || 'none'}`;
  out.print(doc.ok ? out.color.green(line) : out.color.red(line));
}
