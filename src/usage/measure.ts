/**
 * `tenantctl usage`: per tenant bytes, rows, open connections and (where pg_stat_statements is
 * installed) calls and execution time, against the tier's quotas, with per-shard totals. Units
 * of work through the bounded runner (global concurrency, each shard's connection budget): per
 * shard one on its maintenance database (sessions, statements), and one per usage group of the
 * placement drivers (src/placement/<model>/: `usageGroup`, `usage`): shared tables in one pass
 * per table for all their tenants, schemas of their own in batches on one connection.
 *
 * @module
 */
import { counted } from '../report/count.js';
import type { Config } from '../config/types.js';
import type { TenantRow } from '../catalog/tables.js';
import type { Fleet } from '../fleet/fleet.js';
import { fanout } from '../fanout/run.js';
import type { TenantResult } from '../fanout/result.js';
import type { ShardClient } from '../fleet/shard-connections.js';
import { ADMIN_DATABASE } from '../placement/databases.js';
import { drivers } from '../placement/drivers.js';
import { tenantRole } from '../placement/placement.js';
import { rowTargetId } from '../placement/naming.js';
import type { DataUsage, MeasureOptions } from '../placement/usage-types.js';
import { settleEarlyPasses, type EarlyPasses } from './early-passes.js';
import { sessionCounts, statementStats, type SessionCount, type StatementStats } from './activity.js';
import { overQuota, quotasOf, type Quotas } from './quotas.js';

export interface TenantUsage {
  tenant: string;
  tier: string;
  model: string;
  region: string;
  shard: string;
  bytes: number;
  rows: number;
  maxTableRows: number;
  connections: number;
  /** Absent (not zero) where pg_stat_statements is not installed, or the tenant has no role of its own. */
  calls?: number;
  execMs?: number;
  quotas: Quotas;
  /** The quotas exceeded (empty: within its tier). */
  over: string[];
}

export interface ShardUsage {
  shard: string;
  region: string;
  tenants: number;
  bytes: number;
  rows: number;
  connections: number;
  overQuota: number;
  /** This shard's share of its region's bytes (0–1): where the weight is. */
  regionShare: number;
  /** The heaviest tenants by bytes (up to --top, default 5). */
  heaviest: { tenant: string; bytes: number }[];
  /** Why calls and execution time are absent on this shard, when they are. */
  statements?: string;
}

export interface UsageReport {
  tenants: TenantUsage[];
  shards: ShardUsage[];
  /** Estimated with TABLESAMPLE: rows and shared-table bytes are scaled from a sample. */
  estimate?: { percent: number; note: string };
  /** Units of work that failed (a shard down): their tenants are missing from `tenants`. */
  failures: TenantResult[];
  /** Most connections open at once per shard, against its budget. */
  connections: Record<string, { peak: number; budget: number }>;
  durationMs: number;
}

interface Unit {
  id: string;
  shard: string;
  database: string;
  /** `activity`: the shard's sessions and statements; `data`: one usage group of a driver (the first tenant's). */
  kind: 'activity' | 'data';
  tenants: TenantRow[];
}

export interface UsageOptions extends MeasureOptions {
  concurrency: number;
  top?: number;
  /** Passes already started (early-passes.ts): a unit with one takes its tenants from it. */
  early?: EarlyPasses;
}

/** What the units found, filled in as they finish. */
interface Measured {
  data: Map<string, DataUsage>;
  sessions: Map<string, SessionCount[]>;
  statements: Map<string, StatementStats>;
}

/**
 * Measure the tenants. Never throws per unit: a unit that fails is in `failures`.
 *
 * @example
 *   const r = await measureUsage({ config, fleet }, tenants, { concurrency: 8 });
 *   r.tenants.filter((t) => t.over.length > 0);
 */
export async function measureUsage(deps: { config: Config; fleet: Fleet }, tenants: TenantRow[], opts: UsageOptions): Promise<UsageReport> {
  const started = Date.now();
  const units = planUsageUnits(tenants);
  const m: Measured = { data: new Map(), sessions: new Map(), statements: new Map() };
  const results = await fanout(
    units,
    {
      concurrency: opts.concurrency,
      shardOf: (u) => u.shard,
      shardBudget: (s) => deps.fleet.connections(s).budget,
      onError: 'continue',
    },
    async (u): Promise<TenantResult> => {
      if (!(await fromEarlyPass(u, opts.early, m)))
        await deps.fleet.withClient(u.shard, u.database, (c) => measureUnit(c, deps.config, u, opts, m));
      return { tenant: counted(u.tenants.length, 'tenant'), target: u.id, shard: u.shard, status: 'succeeded' };
    },
    (u, reason) => ({ tenant: counted(u.tenants.length, 'tenant'), target: u.id, shard: u.shard, status: 'skipped', reason }),
  );
  await settleEarlyPasses(opts.early);
  const measured = tenants.flatMap((t) => {
    const d = m.data.get(t.slug);
    if (!d || d.unmeasured || !m.sessions.has(t.shard)) return [];
    return [tenantUsage(deps.config, t, d, m.sessions.get(t.shard)!, m.statements.get(t.shard))];
  });
  return {
    tenants: measured,
    shards: shardTotals(deps.config, measured, m.statements, opts.top ?? 5),
    ...(opts.estimate ? { estimate: estimateNote(opts.estimate.percent) } : {}),
    failures: [...results.filter((r) => r.status !== 'succeeded'), ...unmeasured(tenants, m.data), ...notPlaced(tenants)],
    connections: peakConnections(deps.fleet, units),
    durationMs: Date.now() - started,
  };
}

/**
 * One failure per tenant whose own tables were held past the measurement's lock wait: never a
 * quiet zero (a tenant could hide from --fail-on-quota by locking its tables), and never the
 * whole database's tenants for one.
 */
function unmeasured(tenants: TenantRow[], data: Map<string, DataUsage>): TenantResult[] {
  return tenants.flatMap((t) => {
    const reason = data.get(t.slug)?.unmeasured;
    if (!reason) return [];
    return [
      {
        tenant: t.slug,
        target: rowTargetId(t),
        shard: t.shard,
        status: 'failed' as const,
        error: { code: 'LOCKED', message: reason },
      },
    ];
  });
}

function measurable(t: TenantRow): boolean {
  return t.status === 'active' || t.status === 'suspended' || t.status === 'moving';
}

/**
 * One failure per selected tenant that has no whole placement (a create, or a delete, that did
 * not finish): not measured is never left out silently, nor counted as zero.
 */
function notPlaced(tenants: TenantRow[]): TenantResult[] {
  return tenants
    .filter((t) => !measurable(t))
    .map((t) => ({
      tenant: t.slug,
      target: rowTargetId(t),
      shard: t.shard,
      status: 'failed' as const,
      error: {
        code: 'TENANT_STATE',
        message: `${t.slug} is ${t.status}: it has no whole placement to measure (tenantctl tenant show ${t.slug} says what was left)`,
      },
    }));
}

/** A data unit whose pass already ran: its tenants' usage from it, no connection of its own. */
async function fromEarlyPass(u: Unit, early: EarlyPasses | undefined, m: Measured): Promise<boolean> {
  const ofPass = drivers[u.tenants[0].model].usageOfPass;
  const byKey = u.kind === 'data' && ofPass ? await early?.get(u.id) : undefined;
  if (byKey instanceof Error) throw byKey;
  if (!byKey || !ofPass) return false;
  for (const [slug, d] of ofPass(u.tenants, byKey)) m.data.set(slug, d);
  return true;
}

async function measureUnit(c: ShardClient, config: Config, u: Unit, opts: MeasureOptions, m: Measured): Promise<void> {
  if (u.kind === 'activity') {
    m.sessions.set(u.shard, await sessionCounts(c));
    const roles = u.tenants.map(tenantRole).filter((r): r is string => r !== null);
    m.statements.set(u.shard, await statementStats(c, roles, u.shard));
    return;
  }
  // The driver of the group measures all its tenants at once (one pass, one connection).
  for (const [slug, d] of await drivers[u.tenants[0].model].usage(c, config, u.tenants, opts)) m.data.set(slug, d);
}

function estimateNote(percent: number): NonNullable<UsageReport['estimate']> {
  return {
    percent,
    note: `estimated: rows and shared-table bytes scaled from a TABLESAMPLE SYSTEM (${percent}) of each table's pages; exact sizes of tables of their own`,
  };
}

/** Most connections open at once per shard the units used, against its budget. */
function peakConnections(fleet: Fleet, units: Unit[]): UsageReport['connections'] {
  const peaks = fleet.peaks();
  const out: UsageReport['connections'] = {};
  for (const s of new Set(units.map((u) => u.shard))) out[s] = { peak: peaks[s] ?? 0, budget: fleet.connections(s).budget };
  return out;
}

/** Units: per shard its activity, and per shard each of the drivers' usage groups (a database, or a shared schema of one). Pure. */
export function planUsageUnits(tenants: TenantRow[]): Unit[] {
  const units = new Map<string, Unit>();
  for (const t of tenants) {
    // A tenant half made or half removed has no whole placement to measure (notPlaced names it);
    // a moving one is measured where the catalog says it lives (whole until the switch, and after).
    if (!measurable(t)) continue;
    const d = drivers[t.model];
    // Keyed by the driver's kind too, so two kinds' groups never share a unit.
    for (const [by, id, database, kind] of [
      ['activity', `${t.shard}/(activity)`, ADMIN_DATABASE, 'activity'],
      [d.kind, `${t.shard}/${d.usageGroup(t)}`, t.database_name, 'data'],
    ] as const) {
      const k = `${by} ${id}`;
      const u = units.get(k) ?? { id, shard: t.shard, database, kind, tenants: [] };
      u.tenants.push(t);
      units.set(k, u);
    }
  }
  return [...units.values()];
}

function tenantUsage(config: Config, t: TenantRow, d: DataUsage, sessions: SessionCount[], stats: StatementStats | undefined): TenantUsage {
  const role = tenantRole(t);
  const connections = sessions
    .filter((s) =>
      role ? s.role === role : s.role === config.servingRole.name && s.database === t.database_name && s.application === t.slug,
    )
    .reduce((n, s) => n + s.sessions, 0);
  const quotas = quotasOf(config.tiers[t.tier]);
  const st = role && stats && 'byRole' in stats ? (stats.byRole.get(role) ?? { calls: 0, execMs: 0 }) : undefined;
  const usage = { ...d, connections };
  return {
    tenant: t.slug,
    tier: t.tier,
    model: t.model,
    region: t.region,
    shard: t.shard,
    ...usage,
    ...(st ? { calls: st.calls, execMs: Math.round(st.execMs * 1000) / 1000 } : {}),
    quotas,
    over: overQuota(usage, quotas),
  };
}

function shardTotals(config: Config, tenants: TenantUsage[], statements: Map<string, StatementStats>, top: number): ShardUsage[] {
  const regionBytes = new Map<string, number>();
  for (const t of tenants) regionBytes.set(t.region, (regionBytes.get(t.region) ?? 0) + t.bytes);
  const out: ShardUsage[] = [];
  for (const s of config.shards) {
    const mine = tenants.filter((t) => t.shard === s.name);
    if (mine.length === 0) continue;
    const bytes = mine.reduce((n, t) => n + t.bytes, 0);
    const st = statements.get(s.name);
    out.push({
      shard: s.name,
      region: s.region,
      tenants: mine.length,
      bytes,
      rows: mine.reduce((n, t) => n + t.rows, 0),
      connections: mine.reduce((n, t) => n + t.connections, 0),
      overQuota: mine.filter((t) => t.over.length > 0).length,
      regionShare: regionBytes.get(s.region) ? bytes / regionBytes.get(s.region)! : 0,
      heaviest: [...mine]
        .sort((a, b) => b.bytes - a.bytes)
        .slice(0, top)
        .map((t) => ({ tenant: t.tenant, bytes: t.bytes })),
      ...(st && 'absent' in st ? { statements: st.absent } : {}),
    });
  }
  return out;
}
