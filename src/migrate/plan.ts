import type { TenantRow } from '../catalog/tables.js';
import type { Model } from '../config/types.js';
import { UsageError } from '../errors.js';
import { rowTargetId } from '../placement/naming.js';
import type { MigrationTarget } from './apply-target.js';
import { migrationHooks } from '../placement/drivers.js';

/**
 * The pure half of `migrate up` and `migrate status`: from catalog tenants (already filtered by
 * the selectors) to the targets to migrate, in order, and the tenants left out with the reason.
 * No database, no clock: tested on its own.
 *
 * - One target per distinct placement: a pool target serves every pool tenant of its shard; each
 *   schema or database tenant is its own target.
 * - Pool targets come first (one per shard, by shard name), then schema and database targets
 *   (by tenant slug).
 * - Tenants that are provisioning, failed, being deleted or being moved are skipped with the reason (their own
 *   command owns the placement); suspended tenants are migrated, so that they never drift.
 * - `--partition I/N` keeps the targets whose stable hash of the target id falls in slice I of N:
 *   the same split on every machine and every run, so CI matrix jobs cover the fleet exactly once.
 */

/** The catalog fields the planner reads. */
export type PlannableTenant = Pick<TenantRow, 'slug' | 'model' | 'region' | 'shard' | 'database_name' | 'schema_name' | 'status'> & {
  schema_version?: string | null;
};

export interface TenantRef {
  slug: string;
  model: Model;
  region: string;
  shard: string;
  status: string;
  /** The catalog's schema_version (to skip writing it again when it is right). */
  schemaVersion?: string | null;
}

export interface PlannedTarget extends MigrationTarget {
  /** `us1/tenant_schemas/t_acme` (targetId). */
  id: string;
  region: string;
  /** The selected tenants this target serves, by slug: many for a pool target, one otherwise. */
  tenants: TenantRef[];
}

export interface SkippedTenant {
  tenant: TenantRef;
  /** The target it would belong to. */
  target: string;
  /** `provisioning`, `failed` or `deleting`. */
  reason: string;
}

export interface MigratePlan {
  targets: PlannedTarget[];
  skipped: SkippedTenant[];
}

/** Slice `index` (1-based) of `count`. */
export interface Partition {
  index: number;
  count: number;
}

export interface PlanOptions {
  partition?: Partition;
  /** Keep only these target ids (for --resume and --only-failed). */
  only?: ReadonlySet<string>;
}

/** Statuses whose placement another command owns; `migrate up` leaves them alone. */
// `moving`: the move copies the tenant at the version it checked; a migration in between would
// change the source's shape under the copy (the move resumes or is rolled back, then migrate).
export const SKIPPED_STATUSES: ReadonlySet<string> = new Set(['provisioning', 'failed', 'deleting', 'moving']);

/** Shared targets (a pool serves many tenants) first: their failure is the widest, so it shows first. */
const sharedFirst = (m: Model): number => (migrationHooks(m).shared ? 0 : 1);

/**
 * @example
 *   const plan = planTargets(await selectTenants(db, { region: ['us-east'] }), { partition: { index: 1, count: 4 } });
 *   plan.targets[0].id // 'us1/tenant_pool/app' (pool targets first)
 */
export function planTargets(tenants: readonly PlannableTenant[], opts: PlanOptions = {}): MigratePlan {
  const byId = new Map<string, PlannedTarget>();
  const skipped: SkippedTenant[] = [];
  for (const t of tenants) {
    const id = rowTargetId(t);
    if (!keep(id, opts)) continue;
    const ref: TenantRef = {
      slug: t.slug,
      model: t.model,
      region: t.region,
      shard: t.shard,
      status: t.status,
      schemaVersion: t.schema_version,
    };
    if (SKIPPED_STATUSES.has(t.status)) {
      skipped.push({ tenant: ref, target: id, reason: t.status });
      continue;
    }
    const existing = byId.get(id);
    if (existing) {
      existing.tenants.push(ref);
      continue;
    }
    byId.set(id, {
      id,
      model: t.model,
      shard: t.shard,
      region: t.region,
      database: t.database_name,
      schema: t.schema_name,
      tenants: [ref],
    });
  }
  const targets = [...byId.values()];
  for (const t of targets) t.tenants.sort((a, b) => compare(a.slug, b.slug));
  targets.sort(
    (a, b) =>
      sharedFirst(a.model) - sharedFirst(b.model) ||
      (migrationHooks(a.model).shared ? compare(a.shard, b.shard) || compare(a.id, b.id) : compare(a.tenants[0].slug, b.tenants[0].slug)),
  );
  skipped.sort((a, b) => compare(a.tenant.slug, b.tenant.slug));
  return { targets, skipped };
}

function keep(id: string, opts: PlanOptions): boolean {
  if (opts.only && !opts.only.has(id)) return false;
  if (opts.partition && !inPartition(id, opts.partition)) return false;
  return true;
}

/** Code-point order, the same in every locale. */
function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Parse `--partition I/N` (1 ≤ I ≤ N ≤ 1000).
 *
 * @example
 *   parsePartition('2/4') // { index: 2, count: 4 }
 */
export function parsePartition(value: string): Partition {
  const m = /^\s*(\d+)\s*\/\s*(\d+)\s*$/.exec(value);
  const index = m ? Number(m[1]) : NaN;
  const count = m ? Number(m[2]) : NaN;
  if (!m || count < 1 || count > 1000 || index < 1 || index > count) {
    throw new UsageError(
      'USAGE',
      `--partition must be I/N with 1 ≤ I ≤ N ≤ 1000, got ${JSON.stringify(value)}`,
      'e.g. --partition 2/4 in the second of four CI jobs (each job runs a disjoint quarter of the targets)',
    );
  }
  return { index, count };
}

/** Whether a target id falls in the partition: FNV-1a of the id, modulo N. */
export function inPartition(id: string, p: Partition): boolean {
  return partitionOf(id, p.count) === p.index;
}

/** The 1-based slice of N a target id belongs to. */
export function partitionOf(id: string, count: number): number {
  return (fnv1a(id) % count) + 1;
}

/** 32-bit FNV-1a over the UTF-8 bytes: stable across processes, machines and Node versions. */
export function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (const byte of Buffer.from(text, 'utf8')) {
    h ^= byte;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/**
 * Split the targets for `--canary N`: the first N schema or database targets in plan order (a
 * pool target serves many tenants, so it is a canary only when there are not enough others),
 * then the rest in plan order.
 */
export function splitCanaries<T extends Pick<PlannedTarget, 'model'>>(targets: readonly T[], n: number): { canaries: T[]; rest: T[] } {
  if (n <= 0) return { canaries: [], rest: [...targets] };
  const chosen = new Set<T>();
  for (const t of targets) if (chosen.size < n && !migrationHooks(t.model).shared) chosen.add(t);
  for (const t of targets) if (chosen.size < n && migrationHooks(t.model).shared) chosen.add(t);
  const canaries = targets.filter((t) => chosen.has(t));
  return { canaries, rest: targets.filter((t) => !chosen.has(t)) };
}
