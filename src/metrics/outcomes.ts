import type { PruneEntry } from '../backup/prune.js';
import type { ResultDocument } from '../fanout/result.js';
import type { AuditDocument } from '../report/audit.js';
import { SEVERITIES } from '../audit/types.js';
import type { RunOutcome } from './run-metrics.js';

/** What a run's metrics say about its items and tenants (the rest of RunOutcome is the run's own). */
export type Outcomes = Pick<RunOutcome, 'outcomes' | 'tenants'>;

/**
 * A fan-out's result rows (backup create, migrate up): counts by status, and each tenant's
 * status. A tenant with several rows (a pool tenant and its own target) takes the worst.
 *
 * @example
 *   fromResults(doc); // { outcomes: { succeeded: 3, failed: 1, skipped: 0 }, tenants: [{ tenant: 'acme', outcome: 'failed' }, …] }
 */
export function fromResults(doc: Pick<ResultDocument, 'summary' | 'results'>): Outcomes {
  const { succeeded, failed, skipped } = doc.summary;
  const worst = new Map<string, string>();
  const rank = (s: string) => ['failed', 'skipped', 'succeeded'].indexOf(s);
  for (const r of doc.results) {
    const seen = worst.get(r.tenant);
    if (seen === undefined || rank(r.status) < rank(seen)) worst.set(r.tenant, r.status);
  }
  return { outcomes: { succeeded, failed, skipped }, tenants: [...worst].map(([tenant, outcome]) => ({ tenant, outcome })) };
}

/** `backup prune`: backups by action; a tenant's outcome is `deleted` (or `would delete`) if any of its backups were, else `kept`. */
export function fromPrune(rows: PruneEntry[]): Outcomes {
  const outcomes: Record<string, number> = { kept: 0, deleted: 0, 'would delete': 0 };
  const tenants = new Map<string, string>();
  for (const r of rows) {
    outcomes[r.action] = (outcomes[r.action] ?? 0) + 1;
    if (r.action !== 'kept' || !tenants.has(r.tenant)) tenants.set(r.tenant, r.action);
  }
  return { outcomes, tenants: [...tenants].map(([tenant, outcome]) => ({ tenant, outcome })) };
}

/**
 * `audit`: findings by severity and units that could not run; a tenant's outcome is the worst
 * severity of the findings naming it, else `clean` (findings on a pool target or a cluster name
 * no one tenant; they count in the totals).
 */
export function fromAudit(doc: Pick<AuditDocument, 'summary' | 'findings'>, tenants: string[]): Outcomes {
  const worst = new Map<string, number>();
  for (const f of doc.findings) {
    if (f.tenant === null) continue;
    const rank = SEVERITIES.indexOf(f.severity);
    worst.set(f.tenant, Math.min(worst.get(f.tenant) ?? SEVERITIES.length, rank));
  }
  return {
    outcomes: { ...doc.summary.bySeverity, units_failed: doc.summary.unitsFailed },
    tenants: tenants.map((tenant) => {
      const rank = worst.get(tenant);
      return { tenant, outcome: rank === undefined ? 'clean' : SEVERITIES[rank] };
    }),
  };
}
