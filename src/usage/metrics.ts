/**
 * `usage --metrics-file`: the usage report as Prometheus gauges, one series per tenant and
 * measure, labelled tenant, tier, model, shard and region (written by src/metrics/textfile.ts).
 *
 * @module
 */
import { Gauge, Registry } from 'prom-client';
import type { TenantUsage, UsageReport } from './measure.js';

const LABELS = ['tenant', 'tier', 'model', 'shard', 'region'] as const;

/** Gauges and the measure each one reads; calls and time only where they were measured. */
const MEASURES: { name: string; help: string; value: (t: TenantUsage) => number | undefined }[] = [
  { name: 'tenantctl_tenant_bytes', help: "Bytes of the tenant's tables, indexes and TOAST", value: (t) => t.bytes },
  { name: 'tenantctl_tenant_rows', help: "Rows in the tenant's tables", value: (t) => t.rows },
  { name: 'tenantctl_tenant_connections', help: 'Open sessions of the tenant', value: (t) => t.connections },
  { name: 'tenantctl_tenant_statement_calls', help: "Statements run by the tenant's role (pg_stat_statements)", value: (t) => t.calls },
  {
    name: 'tenantctl_tenant_statement_seconds',
    help: "Total execution time of the tenant's role's statements in seconds (pg_stat_statements)",
    value: (t) => (t.execMs === undefined ? undefined : t.execMs / 1000),
  },
  {
    name: 'tenantctl_tenant_storage_quota_bytes',
    help: "The tier's storage quota (absent: none)",
    value: (t) => t.quotas.storage ?? undefined,
  },
  { name: 'tenantctl_tenant_over_quota', help: '1 when the tenant is over any of its quotas', value: (t) => (t.over.length ? 1 : 0) },
];

/** A registry holding the report's gauges (a fresh one: the default registry is not used). */
export function usageRegistry(report: UsageReport): Registry {
  const registry = new Registry();
  for (const m of MEASURES) {
    const g = new Gauge({ name: m.name, help: m.help, labelNames: LABELS, registers: [registry] });
    for (const t of report.tenants) {
      const v = m.value(t);
      if (v !== undefined) g.set({ tenant: t.tenant, tier: t.tier, model: t.model, shard: t.shard, region: t.region }, v);
    }
  }
  return registry;
}
