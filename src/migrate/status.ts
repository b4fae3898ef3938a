import type { CatalogDb } from '../catalog/open.js';
import { selectPlannable, type TenantSelector } from '../catalog/tenants.js';
import type { Fleet } from '../fleet/fleet.js';
import type { TargetError } from './apply-target.js';
import type { MigrationFile } from './files.js';
import { planTargets, type PlannedTarget, type SkippedTenant } from './plan.js';
import { lastRunByTarget } from './run-record.js';
import { byDatabase, readStates, versionOf, type TargetState } from './state.js';
import type { Drift } from './tracking.js';

/**
 * `migrate status`: where every selected target stands against the migration files, read with one
 * query per database, grouped for a fleet of thousands ("980 at 0004_x (head), 18 at 0003_y,
 * 2 failed"), with drift, unknown migrations, never-migrated targets and the targets whose last
 * run failed named. `ok` (exit 0) means nothing is left to do.
 */
/** `ahead`: nothing pending, but migrations applied there have no file here (a newer release ran there, or a file was deleted). */
export type TargetCondition = 'up-to-date' | 'pending' | 'never-migrated' | 'failed' | 'drift' | 'ahead' | 'unreachable';

export interface StatusTarget {
  target: string;
  model: string;
  region: string;
  shard: string;
  tenants: string[];
  condition: TargetCondition;
  /** The highest migration applied there; null when none. */
  version: string | null;
  applied: number;
  pending: string[];
  drift: Drift[];
  /** Applied there, with no file here (a newer release ran there, or a file was deleted). */
  unknown: string[];
  /** The last run that finished this target, when it failed. */
  lastRun?: { run: number; status: string; error?: unknown };
  error?: TargetError;
}

export interface StatusGroup {
  condition: TargetCondition;
  version: string | null;
  tenants: number;
  targets: number;
  /** `980 at 0004_x (head)` */
  label: string;
}

export interface StatusSummary {
  tenants: number;
  targets: number;
  upToDate: number;
  pending: number;
  neverMigrated: number;
  failed: number;
  drift: number;
  ahead: number;
  unreachable: number;
  /** Targets with unknown migrations (reported, not counted as work). */
  unknown: number;
  /** Tenants not migrated by `migrate up` (provisioning, failed, deleting). */
  skipped: number;
}

export interface MigrateStatusDocument {
  command: 'migrate status';
  /** Nothing pending, no drift, no failed or unreachable target: exit 0. */
  ok: boolean;
  head: string | null;
  summary: StatusSummary;
  groups: StatusGroup[];
  targets: StatusTarget[];
  skipped: { tenant: string; target: string; reason: string }[];
  /** The latest `migrate repair` runs (newest first), so a repaired drift is not a mystery. */
  repairs: RepairRecord[];
}

export interface RepairRecord {
  run: number;
  migration: string;
  mode: string;
  status: string;
  at: string;
  targets: number;
  repaired: number;
  failed: number;
}

export interface StatusDeps {
  db: CatalogDb;
  fleet: Fleet;
  migrations: MigrationFile[];
}

/**
 * @example
 *   const doc = await migrateStatus(deps, { selector: { region: ['eu-west'] }, concurrency: 8 });
 *   doc.groups.map((g) => g.label) // ['980 at 0004_x (head)', '18 at 0003_y (1 pending)', '2 failed']
 */
export async function migrateStatus(
  deps: StatusDeps,
  opts: { selector?: TenantSelector; concurrency: number },
): Promise<MigrateStatusDocument> {
  const plan = planTargets(await selectPlannable(deps.db, opts.selector ?? {}));
  const states = await readStates(deps.fleet, byDatabase(plan.targets), deps.migrations, { concurrency: opts.concurrency });
  const last = await lastRunByTarget(
    deps.db,
    plan.targets.map((t) => t.id),
  );
  const targets = plan.targets.map((t) => {
    const l = last.get(t.id);
    return statusOf(t, states.get(t.id)!, l && { run: l.runId, status: l.status, error: l.error });
  });
  return { ...statusDocument(targets, plan.skipped, deps.migrations.at(-1)?.id ?? null), repairs: await latestRepairs(deps.db) };
}

/** The last few repair runs (operations_kind_status_idx: kind, status, id). */
async function latestRepairs(db: CatalogDb, limit = 5): Promise<RepairRecord[]> {
  const rows = await db
    .selectFrom('operations')
    .select(['id', 'status', 'args', 'progress', 'started_at'])
    .where('kind', '=', 'migrate-repair')
    .orderBy('id', 'desc')
    .limit(limit)
    .execute();
  return rows.map((r) => {
    const a = (r.args ?? {}) as { migration?: string; mode?: string };
    const p = (r.progress ?? {}) as { targets?: number; repaired?: number; failed?: number };
    return {
      run: Number(r.id),
      migration: a.migration ?? '',
      mode: a.mode ?? '',
      status: r.status,
      at: r.started_at.toISOString(),
      targets: p.targets ?? 0,
      repaired: p.repaired ?? 0,
      failed: p.failed ?? 0,
    };
  });
}

/** One target's condition. Pure. */
export function statusOf(t: PlannedTarget, state: TargetState, lastRun?: { run: number; status: string; error?: unknown }): StatusTarget {
  const base = { target: t.id, model: t.model, region: t.region, shard: t.shard, tenants: t.tenants.map((x) => x.slug) };
  if (!state.ok) {
    return { ...base, condition: 'unreachable', version: null, applied: 0, pending: [], drift: [], unknown: [], error: state.error };
  }
  const r = state.report;
  const names = state.applied;
  let condition: TargetCondition;
  if (r.drift.length > 0) condition = 'drift';
  else if (r.pending.length === 0) condition = r.unknown.length > 0 ? 'ahead' : 'up-to-date';
  else if (lastRun?.status === 'failed') condition = 'failed';
  else if (names.length === 0) condition = 'never-migrated';
  else condition = 'pending';
  const out: StatusTarget = {
    ...base,
    condition,
    version: versionOf(names),
    applied: names.length,
    pending: r.pending.map((m) => m.id),
    drift: r.drift,
    unknown: r.unknown,
  };
  if (lastRun?.status === 'failed') out.lastRun = lastRun;
  return out;
}

const ORDER: TargetCondition[] = ['up-to-date', 'pending', 'failed', 'never-migrated', 'drift', 'ahead', 'unreachable'];

/** Group and count. Pure. */
export function statusDocument(
  targets: StatusTarget[],
  skipped: SkippedTenant[],
  head: string | null,
): Omit<MigrateStatusDocument, 'repairs'> {
  const groups = new Map<string, StatusGroup>();
  for (const t of targets) {
    const byVersion = t.condition === 'up-to-date' || t.condition === 'pending';
    const key = `${t.condition}\u0000${byVersion ? (t.version ?? '') : ''}`;
    const g = groups.get(key) ?? { condition: t.condition, version: byVersion ? t.version : null, tenants: 0, targets: 0, label: '' };
    g.tenants += t.tenants.length;
    g.targets += 1;
    groups.set(key, g);
  }
  const list = [...groups.values()].sort(
    (a, b) =>
      ORDER.indexOf(a.condition) - ORDER.indexOf(b.condition) ||
      ((b.version ?? '') > (a.version ?? '') ? 1 : (b.version ?? '') < (a.version ?? '') ? -1 : 0),
  );
  for (const g of list) g.label = groupLabel(g, head, targets);
  const count = (c: TargetCondition) => targets.filter((t) => t.condition === c).length;
  const summary: StatusSummary = {
    tenants: targets.reduce((n, t) => n + t.tenants.length, 0),
    targets: targets.length,
    upToDate: count('up-to-date'),
    pending: count('pending'),
    neverMigrated: count('never-migrated'),
    failed: count('failed'),
    drift: count('drift'),
    ahead: count('ahead'),
    unreachable: count('unreachable'),
    unknown: targets.filter((t) => t.unknown.length > 0).length,
    skipped: skipped.length,
  };
  return {
    command: 'migrate status',
    ok: summary.upToDate === summary.targets,
    head,
    summary,
    groups: list,
    targets,
    skipped: skipped.map((s) => ({ tenant: s.tenant.slug, target: s.target, reason: s.reason })),
  };
}

function groupLabel(g: StatusGroup, head: string | null, targets: StatusTarget[]): string {
  const n = g.tenants;
  switch (g.condition) {
    case 'up-to-date':
      if (g.version === null) return `${n} with nothing to apply (no migration files)`;
      return `${n} at ${g.version}${g.version === head ? ' (head)' : head !== null && g.version > head ? ' (ahead of these files: a newer release ran there)' : ''}`;
    case 'pending': {
      const pending = new Set(targets.filter((t) => t.condition === 'pending' && t.version === g.version).map((t) => t.pending.length));
      const p = pending.size === 1 ? [...pending][0] : undefined;
      return `${n} at ${g.version} (${p !== undefined ? `${p} pending` : 'some pending'})`;
    }
    case 'failed':
      return `${n} failed (last run failed; still pending)`;
    case 'never-migrated':
      return `${n} never migrated`;
    case 'drift':
      return `${n} drifted (applied migrations changed since)`;
    case 'ahead':
      return `${n} ahead of these files (migrations applied there have no file here)`;
    case 'unreachable':
      return `${n} unreachable`;
  }
}
