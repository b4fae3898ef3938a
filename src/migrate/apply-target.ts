import { UsageError, TenantctlError } from '../errors.js';
import type { Fleet } from '../fleet/fleet.js';
import { targetId } from '../placement/naming.js';
import { applyInCallerTransaction } from './apply-in-transaction.js';
import { applyInOneRoundTrip } from './apply-one-round-trip.js';
import { applyStepByStep } from './apply-steps.js';
import { importMigration, type MigrationFile } from './files.js';
import { driftError } from './target-errors.js';
import { TargetSession } from './target-session.js';
import type { MigrateTargetOptions, MigrationClient, MigrationTarget, TargetOutcome } from './target-types.js';
import { pendingFor, readApplied } from './tracking.js';

/**
 * The migration engine's entry points. The engine is split by concept: the shapes in
 * target-types.ts, one target's session (lock, settings, retry, errors) in target-session.ts and
 * target-errors.ts, and the three apply paths: apply-one-round-trip.ts (the common case of a
 * fleet), apply-steps.ts (everything else), apply-in-transaction.ts (inside a caller's
 * transaction, for provisioning and restore). What differs per model comes from the placement
 * drivers' migration hooks (src/placement/migration-hooks.ts).
 */

export type {
  KnownState,
  MigrateEvent,
  MigrateTargetOptions,
  MigrationClient,
  MigrationTarget,
  TargetError,
  TargetErrorCode,
  TargetOutcome,
  TargetStatus,
} from './target-types.js';
export { driftError } from './target-errors.js';
/** First key of tenantctl's two-int advisory locks: 'tnct'. */
export { MIGRATION_LOCK_CLASSID } from '../operations/lock-ids.js';

/**
 * Bring one target (shard, database, schema, model) to the head of the migration files, or to
 * `opts.upTo`, on one connection the caller holds. Never throws for a failed migration: the
 * outcome says what happened, and fan-out collects one outcome per target.
 *
 * - Refuses (DRIFT) when an applied migration's file changed since.
 * - Holds a per-target session advisory lock (classid MIGRATION_LOCK_CLASSID, objid
 *   hashtext(schema)): schemas of one database migrate in parallel, one schema never twice.
 * - Each migration runs in its own transaction (search_path, lock_timeout and statement_timeout
 *   set locally) with its tracking row, unless it opts out (`-- tenantctl:no-transaction`).
 * - Lock waits, deadlocks and serialization failures are retried with jittered backoff.
 * - A pool target then gets tenantctl's row-level security on its tenant-scoped tables.
 *
 * @example
 *   const outcome = await fleet.withClient('us1', 'tenant_schemas', (c) =>
 *     migrateTarget(c, { model: 'schema', shard: 'us1', database: 'tenant_schemas', schema: 't_acme' },
 *       migrations, { config, upTo: '0003_add_invoices' }));
 *   if (outcome.status === 'failed') console.error(outcome.error?.message);
 */
export async function migrateTarget(
  client: MigrationClient,
  target: MigrationTarget,
  migrations: MigrationFile[],
  opts: MigrateTargetOptions,
): Promise<TargetOutcome> {
  if (client.tenantctlDatabase !== undefined && client.tenantctlDatabase !== target.database) {
    throw new Error(`migrateTarget: client is on database ${client.tenantctlDatabase}, target is ${target.database}`);
  }
  const s = new TargetSession(client, target, opts);
  if (opts.withinTransaction && s.hooks.shared) throw new Error('migrateTarget: withinTransaction is not for shared (pool) targets');
  const files = filesUpTo(migrations, opts.upTo);
  if (opts.signal?.aborted) return s.outcome('skipped', { reason: 'interrupted' });
  s.begin();
  try {
    if (opts.dryRun) {
      const report = pendingFor(files, await readApplied(client, [target.schema]));
      if (report.drift.length > 0) return s.outcome('failed', { error: driftError(report.drift), unknown: report.unknown });
      return s.outcome('succeeded', { pending: report.pending.map((p) => p.id), unknown: report.unknown });
    }
    if (opts.withinTransaction) return await applyInCallerTransaction(s, files);
    // What the caller read is only for the files up to head: with upTo, read again.
    if (opts.known && opts.upTo === undefined) {
      const fast = await applyInOneRoundTrip(s, opts.known);
      if (fast) return fast;
    }
    return await applyStepByStep(s, files);
  } catch (err) {
    return s.outcome('failed', { error: s.toError(err, undefined) });
  } finally {
    await s.end();
  }
}

/**
 * The migration files up to and including `upTo` (all of them without it). A migration applied
 * at the target after `upTo` is then reported as unknown, never undone.
 *
 * @example filesUpTo(files, '0002_add_plan').at(-1)?.id // '0002_add_plan'
 */
export function filesUpTo(migrations: MigrationFile[], upTo: string | undefined): MigrationFile[] {
  if (upTo === undefined) return migrations;
  const i = migrations.findIndex((m) => m.id === upTo);
  if (i < 0) {
    throw new UsageError(
      'BAD_INPUT',
      `migration ${upTo} is not in the migrations folder (${migrations.length} file(s), head ${migrations.at(-1)?.id ?? 'none'})`,
      'name a migration id from the migrations folder, e.g. as `tenantctl migrate status` lists them',
    );
  }
  return migrations.slice(0, i + 1);
}

/**
 * Whether every migration can run inside one caller-held transaction (migrateTarget with
 * `withinTransaction`): SQL files without the no-transaction marker, modules that do not export
 * `transaction = false`. A module that cannot be imported answers false, so the step-by-step
 * path reports the problem as it always does.
 */
export async function runsInOneTransaction(migrations: MigrationFile[]): Promise<boolean> {
  for (const m of migrations) {
    if (m.kind === 'sql') {
      if (!m.transactional) return false;
      continue;
    }
    // As the step-by-step path decides: the module's export, else what its text says.
    const mod = await importMigration(m).catch(() => undefined);
    if (!mod || !(mod.transaction ?? m.transactional)) return false;
  }
  return true;
}

/**
 * migrateTarget on a connection from the fleet; a shard that cannot be reached becomes an
 * UNREACHABLE outcome instead of an exception.
 */
export async function migratePlacement(
  fleet: Fleet,
  target: MigrationTarget,
  migrations: MigrationFile[],
  opts: MigrateTargetOptions,
): Promise<TargetOutcome> {
  const started = Date.now();
  const files = filesUpTo(migrations, opts.upTo);
  try {
    return await fleet.withClient(target.shard, target.database, (c) => migrateTarget(c, target, files, { ...opts, upTo: undefined }));
  } catch (err) {
    if (err instanceof TenantctlError && err.code === 'UNREACHABLE') {
      return {
        target: targetId(target),
        status: 'failed',
        applied: [],
        pending: files.map((m) => m.id),
        unknown: [],
        durationMs: Date.now() - started,
        error: { code: 'UNREACHABLE', message: err.message, hint: err.hint },
      };
    }
    throw err;
  }
}
