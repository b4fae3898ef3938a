import { Gauge, Registry } from 'prom-client';

/** What one run of a command reports to monitoring (see README "Metrics for cron"). */
export interface RunOutcome {
  command: string;
  startedAt: number;
  endedAt: number;
  exitCode: number;
  /** Items of the run (tenants, targets, backups, findings) by outcome. */
  outcomes: Record<string, number>;
  /** One outcome per tenant the run concerned. */
  tenants: { tenant: string; outcome: string }[];
  /** The error code when the run ended in a thrown error (no per-tenant rows then). */
  error?: string;
}

const PREFIX = 'tenantctl';

/**
 * A registry with one run's metrics. `previousLastSuccess` is the last-success timestamp the
 * textfile held before, kept when this run failed so that a staleness alert
 * (`time() - tenantctl_last_success_timestamp_seconds > …`) keeps counting from the last good run.
 *
 * @example
 *   const registry = runRegistry(outcome, 1764900000);
 */
export function runRegistry(run: RunOutcome, previousLastSuccess: number | undefined): Registry {
  const registry = new Registry();
  const gauge = (name: string, help: string, labelNames: string[] = []) =>
    new Gauge({ name: `${PREFIX}_${name}`, help, labelNames: ['command', ...labelNames], registers: [registry] });
  const command = run.command;
  const ok = run.exitCode === 0;
  gauge('run_duration_seconds', 'Wall time of the last run').set({ command }, (run.endedAt - run.startedAt) / 1000);
  gauge('run_timestamp_seconds', 'When the last run ended (Unix time)').set({ command }, run.endedAt / 1000);
  gauge('run_success', '1 when the last run exited 0, else 0').set({ command }, ok ? 1 : 0);
  gauge('run_exit_code', 'Exit code of the last run (0 ok, 1 failed, 2 usage, 3 busy, 130 interrupted)').set({ command }, run.exitCode);
  // Never succeeded: 0, so a staleness alert fires rather than the series being absent.
  gauge('last_success_timestamp_seconds', 'When a run last exited 0 (Unix time; 0 if never)').set(
    { command },
    ok ? run.endedAt / 1000 : (previousLastSuccess ?? 0),
  );
  const outcomes = gauge('run_outcomes', 'Items of the last run (tenants, targets, backups, findings) by outcome', ['outcome']);
  for (const [outcome, n] of Object.entries(run.outcomes)) outcomes.set({ command, outcome }, n);
  if (run.error) gauge('run_error', 'The error code that ended the last run, when one did', ['code']).set({ command, code: run.error }, 1);
  const tenant = gauge('tenant_outcome', "Each tenant's outcome in the last run (1 per tenant)", ['tenant', 'outcome']);
  for (const t of run.tenants) tenant.set({ command, tenant: t.tenant, outcome: t.outcome }, 1);
  return registry;
}
