import { hostname } from 'node:os';
import { sql, type Kysely } from 'kysely';
import type { CatalogDatabase } from '../catalog/tables.js';
import { redactDeep } from '../config/redact.js';
import { LockedError, UsageError } from '../errors.js';
import { RUN_LOCK_CLASSID } from '../operations/lock-ids.js';
import { insertOperation, writeOperation, type OperationStatus } from '../operations/operation-record.js';
import { describeRun, holderName, liveRun, type RunArgs, type RunLock } from '../operations/run-lock.js';

/**
 * The run record of `migrate up`: an operations row (kind 'migrate') naming the holder (user, CI
 * job, pid, host), taken with the run's own advisory lock; a thin adapter over the one writer of
 * the operations table (src/operations/operation-record.ts). Its targets are in target-rows.ts, the
 * batched writer of finished targets in catalog-writer.ts, the fleet run lock in
 * src/operations/run-lock.ts (re-exported here for existing importers).
 */

export {
  acquireRunLock,
  describeRun,
  holderName,
  type AcquireOptions,
  type RunArgs,
  type RunLock,
} from '../operations/run-lock.js';
export { FLEET_LOCK_CLASSID, RUN_LOCK_CLASSID } from '../operations/lock-ids.js';
export { insertTargets, lastRunByTarget, runTargetCounts, runTargets, type NewTargetRow } from './target-rows.js';
export { CatalogWriter, type TargetRecord } from './catalog-writer.js';

export type RunStatus = 'running' | 'succeeded' | 'failed' | 'interrupted' | 'crashed';

export interface RunInfo {
  id: number;
  status: RunStatus;
  holder: string;
  args: RunArgs;
  startedAt: Date;
  finishedAt: Date | null;
}

/**
 * Create the run's operations row and take its own lock, in one transaction on the pinned
 * session, so the row is never visible without its lock (a sibling partition would take it for a
 * crashed run). With the fleet lock held exclusively, 'running' rows of dead runs become 'crashed'.
 */
export async function createRun(lock: RunLock, args: Record<string, unknown>, progress: Record<string, unknown>): Promise<RunInfo> {
  const { holder, ciJob } = holderName();
  const fullArgs: RunArgs = { pid: process.pid, host: hostname(), ciJob, partition: null, ...args };
  return lock.use((session) =>
    session.transaction().execute(async (tx) => {
      if (lock.exclusive) await markCrashed(tx);
      const { id, startedAt } = await insertOperation(tx, { kind: 'migrate', holder, args: redactDeep(fullArgs), progress });
      await sql`select pg_advisory_lock(${RUN_LOCK_CLASSID}::int, ${id}::int)`.execute(tx);
      return { id, status: 'running' as const, holder, args: fullArgs, startedAt, finishedAt: null };
    }),
  );
}

/**
 * With the fleet lock held exclusively: 'running' migrate runs whose own lock is free, and every
 * 'running' repair (a repair holds the fleet lock exclusively for its whole run, so none is
 * alive beside the caller), were killed: they become 'crashed'.
 */
export async function markCrashed(db: Kysely<CatalogDatabase>): Promise<void> {
  await sql`update operations o set status = 'crashed', finished_at = now()
             where o.status = 'running'
               and (o.kind = 'migrate-repair' or (o.kind = 'migrate' and not ${liveRun(sql.ref('o.id'))}))`.execute(db);
}

/** A run by id, or a usage error naming how to find one. */
export async function getRun(db: Kysely<CatalogDatabase>, id: number): Promise<RunInfo> {
  const r = await db.selectFrom('operations').selectAll().where('id', '=', id).where('kind', '=', 'migrate').executeTakeFirst();
  if (!r) {
    throw new UsageError(
      'BAD_INPUT',
      `no migrate run ${id} in the catalog`,
      'the run id is printed at the start of migrate up (and in its JSON document as "run")',
    );
  }
  return {
    id: Number(r.id),
    status: r.status as RunStatus,
    holder: r.holder,
    args: r.args as RunArgs,
    startedAt: r.started_at,
    finishedAt: r.finished_at,
  };
}

/**
 * Take over a stopped or crashed run for --resume / --only-failed: its own lock (refused if the
 * run is alive) and status back to running.
 */
export async function reopenRun(lock: RunLock, id: number): Promise<RunInfo> {
  const run = await lock.use((s) => getRun(s, id));
  const r = await lock.use((s) => sql<{ ok: boolean }>`select pg_try_advisory_lock(${RUN_LOCK_CLASSID}::int, ${id}::int) as ok`.execute(s));
  if (!r.rows[0].ok) throw new LockedError(`${describeRun(run)} is still running`, 'wait for it to finish, then resume it if it did not');
  if (lock.exclusive) await lock.use((s) => markCrashed(s));
  await lock.use((s) =>
    s.updateTable('operations').set({ status: 'running', heartbeat_at: new Date(), finished_at: null }).where('id', '=', id).execute(),
  );
  return { ...run, status: 'running' };
}

/** Finish the run: status, end time and final progress. */
export async function finishRun(
  db: Kysely<CatalogDatabase>,
  runId: number,
  status: RunStatus,
  progress: Record<string, unknown>,
): Promise<void> {
  await writeOperation(db, runId, { progress, status: status as OperationStatus });
}
