import { redactDeep } from '../config/redact.js';
import type { MigrateTargetStatus } from '../catalog/tables.js';
import { textArrayLiteral } from '../pg-array.js';

/** One finished target, as the catalog records it. */
export interface TargetRecord {
  target: string;
  /** Absent for targets with no row (known to be up to date before the run). */
  status?: MigrateTargetStatus;
  applied?: string[];
  error?: unknown;
  startedAt?: Date;
  durationMs?: number;
  /** The placement's version after the step; the tenants' schema_version is set to it. */
  version?: string | null;
  /** Tenants whose schema_version follows the target (exclusive targets). */
  slugs?: string[];
  /** Shared (pool) targets: every active or suspended tenant placed there follows it, whoever joined since the plan. */
  shared?: { shard: string; database: string; schema: string };
  /** Event per tenant: what happened to it. */
  event?: { action: string; result: string; details: Record<string, unknown>; tenants: string[] };
}

/**
 * The catalog writer's queue as one array per column, the parameters its statement unnests side
 * by side: no object per waiting target, and no JSON document for the server to take apart
 * (jsonb_to_recordset over 15 columns: 340 ms of the catalog's CPU per 5,000 targets, 255 ms this way;
 * medians of six interleaved pairs at load 4, bench/README.md).
 * text[] values travel as text[] literals and JSON as text, cast back per row.
 */
export class TargetColumns {
  target: string[] = [];
  status: (string | null)[] = [];
  applied: string[] = [];
  error: (string | null)[] = [];
  startedAt: (string | null)[] = [];
  durationMs: (number | null)[] = [];
  version: (string | null)[] = [];
  slugs: string[] = [];
  shShard: (string | null)[] = [];
  shDatabase: (string | null)[] = [];
  shSchema: (string | null)[] = [];
  evAction: (string | null)[] = [];
  evResult: (string | null)[] = [];
  evDetails: (string | null)[] = [];
  evTenants: string[] = [];

  get length(): number {
    return this.target.length;
  }

  push(r: TargetRecord): void {
    this.target.push(r.target);
    this.status.push(r.status ?? null);
    this.applied.push(textArrayLiteral(r.applied ?? []));
    this.error.push(r.error === undefined ? null : json(redactDeep(r.error)));
    this.startedAt.push(r.startedAt?.toISOString() ?? null);
    // As JSON had it: a duration that is not a finite number is no duration.
    this.durationMs.push(r.durationMs !== undefined && Number.isFinite(r.durationMs) ? Math.round(r.durationMs) : null);
    this.version.push(r.version ?? null);
    this.slugs.push(textArrayLiteral(r.slugs ?? []));
    this.shShard.push(r.shared?.shard ?? null);
    this.shDatabase.push(r.shared?.database ?? null);
    this.shSchema.push(r.shared?.schema ?? null);
    this.evAction.push(r.event?.action ?? null);
    this.evResult.push(r.event?.result ?? null);
    // Target and migration ids only, plus an error that was redacted where it was made; the
    // redaction pass is kept for the error, where text from PostgreSQL may quote anything.
    const ev = r.event;
    this.evDetails.push(ev ? json(ev.details.error === undefined ? ev.details : redactDeep(ev.details)) : null);
    this.evTenants.push(textArrayLiteral(ev?.tenants ?? []));
  }

  /** The first `n` queued rows, removed from the queue. */
  take(n: number): TargetColumns {
    const out = new TargetColumns();
    for (const k of COLUMNS) (out[k] as unknown[]) = this[k].splice(0, n);
    return out;
  }
}

const COLUMNS = [
  'target',
  'status',
  'applied',
  'error',
  'startedAt',
  'durationMs',
  'version',
  'slugs',
  'shShard',
  'shDatabase',
  'shSchema',
  'evAction',
  'evResult',
  'evDetails',
  'evTenants',
] as const satisfies readonly (keyof TargetColumns)[];

/** JSON text of a value, null where JSON has no text for it (as a key of undefined value was). */
function json(v: unknown): string | null {
  return JSON.stringify(v) ?? null;
}
