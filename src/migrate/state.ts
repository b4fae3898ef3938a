import { redactText } from '../config/redact.js';
import { errorMessage, TenantctlError } from '../errors.js';
import type { TenantResult } from '../fanout/result.js';
import { fanout } from '../fanout/run.js';
import type { Fleet } from '../fleet/fleet.js';
import { unreachable } from '../fleet/shard-connections.js';
import type { TargetError } from './target-types.js';
import type { MigrationFile } from './files.js';
import { readSummaries } from './summaries.js';
import { pendingFor, versionOf, type AppliedRow, type PendingReport } from './tracking.js';

/**
 * What each target has applied, read with ONE query per database (not one per schema), so a
 * fleet that is up to date is checked in a handful of round trips. Used by `migrate up` (to skip
 * targets with nothing to do without taking their lock), by `--dry-run` and by `migrate status`.
 *
 * A shard that cannot be reached is remembered: its other databases fail at once with the same
 * UNREACHABLE error instead of each waiting for its own connection timeout.
 */
export type TargetState =
  | {
      ok: true;
      /** Ids applied at the target (shared between targets at head: do not mutate). */
      applied: readonly string[];
      report: PendingReport;
      /** The database has tenantctl's tracking table. */
      tracked: boolean;
      /** ...and its duration_ms measures by default (tracking.ts TIMED_SQL). */
      timed?: boolean;
    }
  | { ok: false; error: TargetError };

export interface ReadableTarget {
  id: string;
  shard: string;
  database: string;
  schema: string;
}

/** Shards found down during this command, with the error their targets get. */
export class ShardHealth {
  private readonly down = new Map<string, { error: TargetError; cause: unknown }>();

  /** With the fleet, each database's error names that database (not the first one tried). */
  constructor(private readonly fleet?: Pick<Fleet, 'shard'>) {}

  /**
   * The shard's failure if it is known to be down, worded for `database` when given: a pool
   * target's error must name the pool database even when a schema database failed first.
   */
  get(shard: string, database?: string): TargetError | undefined {
    const d = this.down.get(shard);
    if (!d) return undefined;
    if (!database || !this.fleet || d.cause === undefined) return d.error;
    const e = unreachable(this.fleet.shard(shard), database, d.cause);
    return { ...d.error, message: redactText(e.message) };
  }

  /**
   * Turn a connection failure into a TargetError; remember the shard as down unless only the
   * database is missing (then the shard itself answered).
   */
  failure(shard: string, err: unknown): TargetError {
    const error: TargetError = {
      code: 'UNREACHABLE',
      message: redactText(errorMessage(err)),
      hint: err instanceof TenantctlError ? err.hint : undefined,
    };
    if (!isMissingDatabase(err)) this.down.set(shard, { error, cause: (err as { cause?: unknown })?.cause });
    return error;
  }
}

/** UNREACHABLE because the database does not exist (3D000), not because the shard is down. */
export function isMissingDatabase(err: unknown): boolean {
  const cause = (err as { cause?: { code?: string } })?.cause;
  return cause?.code === '3D000';
}

export function isUnreachable(err: unknown): boolean {
  return err instanceof TenantctlError && err.code === 'UNREACHABLE';
}

/** Targets grouped by (shard, database), in first-seen order. */
export function byDatabase<T extends ReadableTarget>(targets: readonly T[]): T[][] {
  const groups = new Map<string, T[]>();
  for (const t of targets) {
    const key = `${t.shard}\u0000${t.database}`;
    const g = groups.get(key);
    if (g) g.push(t);
    else groups.set(key, [t]);
  }
  return [...groups.values()];
}

export interface ReadStatesOptions {
  /** Databases read at once across the fleet. */
  concurrency: number;
  health?: ShardHealth;
}

/**
 * Read the state of every target, one query per (shard, database), at most `concurrency` at once
 * and never more per shard than its connection budget (the fleet enforces it).
 *
 * @example
 *   const states = await readStates(fleet, plan.targets, migrations, { concurrency: 8 });
 *   const s = states.get('us1/tenant_schemas/t_acme');
 *   if (s?.ok) s.report.pending.map((m) => m.id);
 */
export async function readStates<T extends ReadableTarget>(
  fleet: Fleet,
  groups: readonly T[][],
  migrations: MigrationFile[],
  opts: ReadStatesOptions,
): Promise<Map<string, TargetState>> {
  const health = opts.health ?? new ShardHealth(fleet);
  const headIds = migrations.map((m) => m.id);
  const headReport: PendingReport = { applied: headIds, pending: [], drift: [], unknown: [] };
  // Targets with the same applied list share one parsed state (never mutated).
  const byList = new Map<AppliedRow[] | undefined, { applied: readonly string[]; report: PendingReport }>();
  const shared = (rows: AppliedRow[] | undefined) => {
    let v = byList.get(rows);
    if (!v) {
      const own = rows ?? [];
      v = { applied: own.map((r) => r.name), report: pendingFor(migrations, own) };
      byList.set(rows, v);
    }
    return v;
  };
  const states = new Map<string, TargetState>();
  // The fan-out's runner bounds the reads: `concurrency` across the fleet, each shard's budget.
  let thrown: { err: unknown } | undefined;
  await fanout<T[], TenantResult>(
    [...groups],
    { concurrency: opts.concurrency, shardOf: (g) => g[0].shard, shardBudget: (s) => fleet.connections(s).budget, onError: 'continue' },
    async (group) => {
      const { shard, database } = group[0];
      const done: TenantResult = { tenant: `${shard}/${database}`, status: 'succeeded' };
      const down = health.get(shard, database);
      if (down) {
        for (const t of group) states.set(t.id, { ok: false, error: down });
        return done;
      }
      try {
        // Every selected schema of the database in one query; a schema at head comes back
        // as a flag, and every such target shares one report.
        const summary = await fleet.withLeafClient(shard, database, (c) =>
          readSummaries(
            c,
            group.map((t) => t.schema),
            migrations,
          ),
        );
        const { tracked, timed } = summary;
        for (const t of group) {
          const s = summary.schemas.get(t.schema);
          if (s === 'head') states.set(t.id, { ok: true, applied: headIds, report: headReport, tracked: true, timed });
          else states.set(t.id, { ok: true, ...shared(s === undefined ? undefined : summary.lists.get(s)), tracked, timed });
        }
      } catch (err) {
        if (!isUnreachable(err)) throw err;
        const error = health.failure(shard, err);
        for (const t of group) states.set(t.id, { ok: false, error });
      }
      return done;
    },
    (g) => ({ tenant: `${g[0].shard}/${g[0].database}`, status: 'skipped' }),
    (g, err) => {
      thrown ??= { err };
      return { tenant: `${g[0].shard}/${g[0].database}`, status: 'failed' };
    },
  );
  // Anything but an unreachable shard is a bug or a broken catalog: the caller sees it.
  if (thrown) throw thrown.err;
  return states;
}

/**
 * Whether a target has nothing to do: nothing pending and no drift. Pool targets still need the
 * cheap row-level-security check before they can be called done.
 */
export function nothingToDo(state: TargetState | undefined): boolean {
  return Boolean(state?.ok && state.report.pending.length === 0 && state.report.drift.length === 0);
}

export { versionOf };
