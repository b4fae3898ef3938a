import { keptByMoves } from './kept-placements.js';
import { counted } from '../report/count.js';
import type { Config } from '../config/types.js';
import type { CatalogDb } from '../catalog/open.js';
import { selectTenants, type TenantSelector } from '../catalog/tenants.js';
import type { TenantRow } from '../catalog/tables.js';
import { fanout } from '../fanout/run.js';
import type { TenantResult } from '../fanout/result.js';
import type { Fleet } from '../fleet/fleet.js';
import { redactText } from '../config/redact.js';
import { errorMessage } from '../errors.js';
import { ADMIN_DATABASE } from '../placement/databases.js';
import { byShape } from '../placement/placement.js';
import { finding } from './registry.js';
import { describeTenantHolder } from '../operations/tenant-lock.js';
import { SEVERITIES, severityRank, type AuditEnv, type AuditUnit, type Finding, type Severity } from './types.js';
import { auditUnit } from './units.js';

export interface AuditDeps {
  config: Config;
  db: CatalogDb;
  fleet: Fleet;
}

export interface AuditOptions {
  selector?: TenantSelector;
  concurrency: number;
  /** Live probes as the serving and tenant roles (default on). */
  probes?: boolean;
  /** Schema tenants per unit of work (a unit holds one connection). */
  chunk?: number;
  signal?: AbortSignal;
  onUnit?: (unit: AuditUnit, result: TenantResult) => void;
}

export interface AuditReport {
  findings: Finding[];
  /** One row per unit of work: succeeded, or failed with the reason (e.g. a shard down). */
  units: TenantResult[];
  tenants: number;
  /** Most connections open at once per shard, against its budget. */
  connections: Record<string, { peak: number; budget: number }>;
  durationMs: number;
}

/** Provisioning or deletion older than this is stuck, not in progress. */
const STUCK_AFTER_MS = 15 * 60 * 1000;

/**
 * Audit the selected tenants: catalog checks and live probes, as units of work per (shard,
 * database) through the bounded runner (global concurrency, each shard's connection budget).
 * Read-only: probes run in transactions that are rolled back. Never throws per unit; a unit that
 * could not run is a failed row in `units`.
 *
 * @example
 *   const report = await runAudit({ config, db, fleet }, { concurrency: 8 });
 *   report.findings.filter((f) => f.severity === 'critical');
 */
export async function runAudit(deps: AuditDeps, opts: AuditOptions): Promise<AuditReport> {
  const started = Date.now();
  const allTenants = await selectTenants(deps.db);
  const selected = await selectTenants(deps.db, opts.selector ?? {});
  const env: AuditEnv = { config: deps.config, fleet: deps.fleet, allTenants, kept: await keptByMoves(deps.db) };
  const units = planUnits(deps.config, selected, opts.chunk ?? 200);
  // A tenant half made or half removed is stuck at once when no live command holds its lock.
  const busy = new Set<string>();
  for (const t of selected.filter((x) => x.status === 'provisioning' || x.status === 'deleting')) {
    if (await describeTenantHolder(deps.db, t.slug)) busy.add(t.slug);
  }
  const findings: Finding[] = stuckTenants(selected, Date.now(), busy);
  const probes = opts.probes !== false;
  const results = await fanout(
    units,
    {
      concurrency: opts.concurrency,
      shardOf: (u) => u.shard,
      shardBudget: (s) => deps.fleet.connections(s).budget,
      onError: 'continue',
      signal: opts.signal,
      onResult: (u, r) => opts.onUnit?.(u, r),
    },
    async (u): Promise<TenantResult> => {
      const t0 = Date.now();
      const res = await deps.fleet.withClient(u.shard, u.database, (c) => auditUnit(c, u, env, probes));
      const found = [...res.findings, ...(res.poolProbe ? await res.poolProbe() : [])];
      findings.push(...found);
      return {
        tenant: u.tenants.length === 1 ? u.tenants[0].slug : counted(u.tenants.length, 'tenant'),
        target: u.id,
        shard: u.shard,
        status: 'succeeded',
        durationMs: Date.now() - t0,
        findings: found.length,
      };
    },
    (u, reason) => ({ tenant: counted(u.tenants.length, 'tenant'), target: u.id, shard: u.shard, status: 'skipped', reason }),
    (u, err) => ({
      tenant: counted(u.tenants.length, 'tenant'),
      target: u.id,
      shard: u.shard,
      status: 'failed',
      error: {
        code: (err as { code?: string }).code === 'UNREACHABLE' ? 'UNREACHABLE' : 'AUDIT_FAILED',
        message: redactText(errorMessage(err)),
      },
    }),
  );
  const connections: AuditReport['connections'] = {};
  const peaks = deps.fleet.peaks();
  for (const s of new Set(units.map((u) => u.shard)))
    connections[s] = { peak: peaks[s] ?? 0, budget: deps.config.shards.find((x) => x.name === s)!.maxConnections };
  return { findings: sortFindings(findings), units: results, tenants: selected.length, connections, durationMs: Date.now() - started };
}

/**
 * Units of work: per shard one for the cluster (roles, databases), one for the shared tables
 * (the pool target), tenants with a schema of their own in a shared database in chunks per
 * database, and one per tenant with a database of its own. Grouped by the shape of their placement
 * (`byShape`, src/placement/placement.ts): the unit's kind, not the model, picks its checks. Pure.
 */
export function planUnits(config: Config, tenants: TenantRow[], chunk: number): AuditUnit[] {
  const units: AuditUnit[] = [];
  for (const shard of config.shards) {
    const mine = tenants.filter((t) => t.shard === shard.name);
    if (mine.length === 0) continue;
    units.push({ id: `${shard.name}/(cluster)`, shard: shard.name, database: ADMIN_DATABASE, kind: 'cluster', tenants: mine });
    const shaped = byShape(mine);
    if (shaped['shared-tables'].length)
      units.push({
        id: `${shard.name}/${shard.poolDatabase}`,
        shard: shard.name,
        database: shard.poolDatabase,
        kind: 'shared-tables',
        tenants: shaped['shared-tables'],
      });
    const bySchemaDb = new Map<string, TenantRow[]>();
    for (const t of shaped['shared-database']) bySchemaDb.set(t.database_name, [...(bySchemaDb.get(t.database_name) ?? []), t]);
    for (const [database, list] of bySchemaDb) {
      for (let i = 0; i * chunk < list.length; i++) {
        units.push({
          id: `${shard.name}/${database}#${i}`,
          shard: shard.name,
          database,
          kind: 'shared-database',
          tenants: list.slice(i * chunk, (i + 1) * chunk),
          selectedInDatabase: list.map((t) => t.slug),
        });
      }
    }
    for (const t of shaped['own-database'].filter((x) => x.status === 'active' || x.status === 'suspended')) {
      units.push({
        id: `${shard.name}/${t.database_name}`,
        shard: shard.name,
        database: t.database_name,
        kind: 'own-database',
        tenants: [t],
      });
    }
  }
  return units;
}

/**
 * Tenants that failed, or whose provisioning or deletion no live command is finishing (`busy`:
 * slugs whose tenant lock is held), or has not finished in a long while.
 */
export function stuckTenants(tenants: TenantRow[], now: number, busy: ReadonlySet<string> = new Set()): Finding[] {
  return tenants
    .filter(
      (t) =>
        t.status === 'failed' ||
        ((t.status === 'provisioning' || t.status === 'deleting') &&
          (!busy.has(t.slug) || now - new Date(t.updated_at).getTime() > STUCK_AFTER_MS)),
    )
    .map((t) =>
      finding('catalog.stuck-tenant', {
        shard: t.shard,
        database: t.database_name,
        tenant: t.slug,
        object: `tenant ${t.slug}`,
        message: `tenant ${t.slug} is ${t.status}${t.status_detail ? ` (${t.status_detail})` : ''} since ${new Date(t.updated_at).toISOString()}: its placement may be half made or half removed`,
        fix: t.status === 'deleting' ? null : `-- run again: tenantctl tenant create ${t.slug}`,
      }),
    );
}

export function sortFindings(f: Finding[]): Finding[] {
  return [...f].sort(
    (a, b) =>
      severityRank(a.severity) - severityRank(b.severity) ||
      (a.tenant ?? '').localeCompare(b.tenant ?? '') ||
      a.check.localeCompare(b.check) ||
      a.object.localeCompare(b.object),
  );
}

/** Count per severity. */
export function countBySeverity(f: Finding[]): Record<Severity, number> {
  const out = Object.fromEntries(SEVERITIES.map((s) => [s, 0])) as Record<Severity, number>;
  for (const x of f) out[x.severity]++;
  return out;
}

/** Findings at or above the threshold. */
export function atOrAbove(f: Finding[], threshold: Severity): Finding[] {
  return f.filter((x) => severityRank(x.severity) <= severityRank(threshold));
}
