import type { TenantResult } from '../fanout/result.js';
import { migrationHooks } from '../placement/drivers.js';
import type { TargetRecord } from './catalog-writer.js';
import type { PlannedTarget, SkippedTenant } from './plan.js';
import type { TargetState } from './state.js';
import type { TargetError, TargetOutcome } from './target-types.js';
import { versionOf } from './tracking.js';

/** The rows, results and catalog records `migrate up` makes of its targets' outcomes. */

/** One row per tenant, as in DESIGN.md. */
export interface MigrateRow extends TenantResult {
  applied?: string[];
  /** Dry run: what would be applied. After a failure: what is still pending. */
  pending?: string[];
  unknown?: string[];
  warnings?: string[];
  /** The target's attempts (1 plus its retries on locks), when it was migrated or checked under its lock. */
  attempts?: number;
}

/** Target-level result inside the fan-out. */
export interface TargetDone extends TenantResult {
  outcome?: TargetOutcome;
}

/** Why a schema/database target's tenant is no longer to be migrated (read under its lock), or null. */
export function goneReason(
  t: PlannedTarget,
  now: { status: string; shard: string; database_name: string; schema_name: string } | undefined,
): string | null {
  if (!now) return 'gone: the tenant was deleted during the run';
  if (now.shard !== t.shard || now.database_name !== t.database || now.schema_name !== t.schema)
    return 'gone: the tenant moved during the run';
  if (now.status !== 'active' && now.status !== 'suspended') return `gone: the tenant became ${now.status} during the run`;
  return null;
}

export function goneRow(row: MigrateRow, reason: string): MigrateRow {
  return { tenant: row.tenant, model: row.model, region: row.region, shard: row.shard, target: row.target, status: 'skipped', reason };
}

export function tenantBase(t: PlannedTarget, slug: string) {
  return { tenant: slug, model: t.model, region: t.region, shard: t.shard, target: t.id };
}

/** A target-level result, labelled for progress lines (a pool target names its tenant count). */
export function targetResult(t: PlannedTarget): { tenant: string; model: string; region: string; shard: string; target: string } {
  return { tenant: labelOf(t), model: t.model, region: t.region, shard: t.shard, target: t.id };
}

function labelOf(t: PlannedTarget): string {
  return migrationHooks(t.model).shared
    ? `pool of ${t.shard} (${t.tenants.length} tenant${t.tenants.length === 1 ? '' : 's'})`
    : t.tenants[0].slug;
}

export function done(t: PlannedTarget, outcome: TargetOutcome): TargetDone {
  if (outcome.error?.code === 'INTERRUPTED') {
    // Ctrl-C between two migrations: what ran is committed, the rest is for --resume. Not a failure.
    const applied = outcome.applied.length ? ` after applying ${outcome.applied.join(', ')}` : '';
    outcome = { ...outcome, status: 'skipped', reason: `not run: interrupted${applied}`, error: undefined };
  } else if (outcome.status === 'skipped' && outcome.reason === 'interrupted') {
    // Ctrl-C after the target was taken (its tenant locked), before its first migration.
    outcome = { ...outcome, reason: 'not run: interrupted' };
  }
  // targetResult's fields and the rest in one literal (a result per target): the fan-out adds its
  // times to it, made here so that every result has the same shape.
  return {
    tenant: labelOf(t),
    model: t.model,
    region: t.region,
    shard: t.shard,
    target: t.id,
    status: outcome.status,
    durationMs: outcome.durationMs,
    startedAt: undefined,
    finishedAt: undefined,
    reason: outcome.reason,
    error: outcome.error ? publicError(outcome.error) : undefined,
    outcome,
  };
}

export function failed(t: PlannedTarget, error: TargetError, t0: number): TargetDone {
  const outcome: TargetOutcome = {
    target: t.id,
    status: 'failed',
    applied: [],
    pending: [],
    unknown: [],
    durationMs: Date.now() - t0,
    error,
  };
  return done(t, outcome);
}

export function upToDateOutcome(t: PlannedTarget, s: TargetState & { ok: true }): TargetOutcome {
  return {
    target: t.id,
    status: 'succeeded',
    applied: [],
    pending: [],
    unknown: s.report.unknown,
    durationMs: 0,
    version: versionOf(s.applied),
  };
}

/** The tenant rows of one target's outcome: pool tenants share it, each with its own row. */
export function tenantRows(t: PlannedTarget, o: TargetOutcome): MigrateRow[] {
  return t.tenants.map((x) => tenantRow(t, x.slug, o));
}

/** One tenant's row of a target's outcome. */
export function tenantRow(t: PlannedTarget, slug: string, o: TargetOutcome): MigrateRow {
  // A literal in tenantBase's key order, not a spread: a no-op run over 5,000 targets makes a row each.
  const row: MigrateRow = {
    tenant: slug,
    model: t.model,
    region: t.region,
    shard: t.shard,
    target: t.id,
    status: o.status,
    applied: o.applied,
    durationMs: o.durationMs,
  };
  if (o.attempts !== undefined) row.attempts = o.attempts;
  if (o.pending.length > 0) row.pending = o.pending;
  if (o.unknown.length > 0) row.unknown = o.unknown;
  if (o.warnings?.length) row.warnings = o.warnings;
  if (o.reason) row.reason = o.reason;
  if (o.error) row.error = publicError(o.error);
  return row;
}

export function skippedRow(s: SkippedTenant): MigrateRow {
  return {
    tenant: s.tenant.slug,
    model: s.tenant.model,
    region: s.tenant.region,
    shard: s.tenant.shard,
    target: s.target,
    status: 'skipped',
    reason: s.reason,
  };
}

/** `{ code, message, migration }` first, then PostgreSQL's code and the hint. */
export function publicError(e: TargetError): MigrateRow['error'] & object {
  const out: Record<string, unknown> = { code: e.code, message: e.message };
  if (e.migration) out.migration = e.migration;
  if (e.pgCode) out.pgCode = e.pgCode;
  if (e.hint) out.hint = e.hint;
  if (e.drift) out.drift = e.drift;
  return out as { code: string; message: string };
}

/** The catalog record of a finished target. */
export function record(t: PlannedTarget, r: { status?: TargetRecord['status']; outcome: TargetOutcome }): TargetRecord {
  const o = r.outcome;
  const shared = migrationHooks(t.model).shared;
  // A shared target's tenants follow it by placement, whoever joined since the plan.
  const slugs = shared ? [] : t.tenants.length === 1 ? [t.tenants[0].slug] : t.tenants.map((x) => x.slug);
  const version = o.version ?? null;
  const rec: TargetRecord = {
    target: t.id,
    status: r.status,
    applied: o.applied,
    error: o.error ? publicError(o.error) : r.status === 'not_run' ? { code: 'NOT_RUN', message: o.reason ?? 'not run' } : undefined,
    startedAt: new Date(Date.now() - o.durationMs),
    durationMs: o.durationMs,
    version,
    slugs,
    shared: shared ? { shard: t.shard, database: t.database, schema: t.schema } : undefined,
  };
  if (o.applied.length > 0 || o.status === 'failed') {
    rec.event = {
      action: o.status === 'failed' ? 'migrate failed' : 'migrated',
      result: o.status === 'failed' ? 'failed' : 'ok',
      details: eventDetails(t, o),
      // The same tenants as `slugs` for an exclusive target (nobody changes either).
      tenants: shared ? t.tenants.map((x) => x.slug) : slugs,
    };
  }
  return rec;
}

/** What a migrated (or failed) target's event says: its applied files, its retries, its error. */
function eventDetails(t: PlannedTarget, o: TargetOutcome): Record<string, unknown> {
  const details: Record<string, unknown> = { target: t.id, applied: o.applied };
  if ((o.attempts ?? 1) > 1) details.attempts = o.attempts;
  if (o.error) details.error = publicError(o.error);
  return details;
}
