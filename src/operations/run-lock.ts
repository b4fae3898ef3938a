import { setTimeout as sleep } from 'node:timers/promises';
import { sql, type Kysely } from 'kysely';
import { currentActor } from '../catalog/actor.js';
import type { CatalogDb } from '../catalog/open.js';
import type { CatalogDatabase } from '../catalog/tables.js';
import { EXIT, LockedError, TenantctlError } from '../errors.js';
import { FLEET_LOCK_CLASSID, RUN_LOCK_CLASSID } from './lock-ids.js';
import { catalogDown, LockSession } from './lock-session.js';

/**
 * The fleet run lock of `migrate up`: a session advisory lock on the process's lock session
 * (src/operations/lock-session.ts, one pinned catalog connection shared with tenant locks, so the
 * catalog shard's budget holds), so a crashed run's lock dies with its process. A whole-fleet run
 * takes it exclusively; the jobs of a `--partition I/N` CI matrix take it shared, plus an
 * exclusive lock on their own slice, so slices run side by side but never beside a whole-fleet
 * run or a second copy of themselves. Each run also holds an advisory lock keyed by its id
 * (RUN_LOCK_CLASSID), so a 'running' record whose lock is free is known to be dead.
 */

const LOCK_POLL_MS = 250;

/** A slice of the fleet (`--partition I/N`). */
export interface RunPartition {
  index: number;
  count: number;
}

export interface RunArgs {
  pid: number;
  host: string;
  ciJob: string | null;
  partition: RunPartition | null;
  [key: string]: unknown;
}

export interface RunLock {
  /** Run fn on the pinned catalog session (one statement at a time); the run's own lock is taken on it. */
  use<T>(fn: (session: Kysely<CatalogDatabase>) => Promise<T>): Promise<T>;
  readonly exclusive: boolean;
  /** Release the run's locks and the lock session. */
  release(): Promise<void>;
}

export interface AcquireOptions {
  partition?: RunPartition | null;
  /** Wait for the holder instead of failing with LockedError (exit 3). */
  wait?: boolean;
  signal?: AbortSignal;
  /** Called once when --wait starts waiting, with who holds the lock. */
  onWaiting?: (holder: string) => void;
}

/**
 * Take the fleet run lock, or throw LockedError naming the holder (exit 3); with `wait`, poll
 * until it is free.
 *
 * @example
 *   const lock = await acquireRunLock(db, { wait: false });
 *   try { ... } finally { await lock.release(); }
 */
export async function acquireRunLock(db: CatalogDb, opts: AcquireOptions): Promise<RunLock> {
  const handle = await LockSession.of(db).acquire();
  try {
    await takeFleetLock((fn) => handle.use(fn), opts);
  } catch (err) {
    await handle.release();
    throw catalogDown(err);
  }
  let released = false;
  return {
    use: (fn) => handle.use(fn),
    exclusive: !opts.partition,
    async release() {
      if (released) return;
      released = true;
      // Only this run's locks: tenant locks of this process live on the same session.
      await handle
        .use((s) =>
          sql`select count(case when l.mode = 'ShareLock'
                                then pg_advisory_unlock_shared(l.classid::bigint::int, l.objid::bigint::int)
                                else pg_advisory_unlock(l.classid::bigint::int, l.objid::bigint::int) end)
                from pg_locks l
               where l.pid = pg_backend_pid() and l.locktype = 'advisory' and l.objsubid = 2
                 and l.classid in (${FLEET_LOCK_CLASSID}::int::oid, ${RUN_LOCK_CLASSID}::int::oid)`.execute(s),
        )
        .catch(() => undefined);
      await handle.release();
    },
  };
}

type OnSession = <T>(fn: (session: Kysely<CatalogDatabase>) => Promise<T>) => Promise<T>;

async function takeFleetLock(use: OnSession, opts: AcquireOptions): Promise<void> {
  let announced = false;
  let emptyLooks = 0;
  for (;;) {
    if (await use((s) => tryFleetLock(s, opts.partition ?? null))) return;
    const holders = await use((s) => describeHolders(s));
    // The holder may be between taking the lock and writing its row: look again shortly.
    if (holders.length === 0 && emptyLooks++ < 5) {
      await sleep(100);
      continue;
    }
    const who = holders.length > 0 ? holders.join('; ') : 'another migrate up (starting up or finishing)';
    if (!opts.wait) {
      throw new LockedError(`another migrate up holds the run lock: ${who}`, 'wait for it to finish, or pass --wait to wait for it');
    }
    if (!announced) {
      opts.onWaiting?.(who);
      announced = true;
    }
    if (opts.signal?.aborted)
      throw new TenantctlError('INTERRUPTED', 'interrupted while waiting for the run lock', undefined, EXIT.interrupted);
    await sleep(LOCK_POLL_MS);
    if (opts.signal?.aborted)
      throw new TenantctlError('INTERRUPTED', 'interrupted while waiting for the run lock', undefined, EXIT.interrupted);
  }
}

async function tryFleetLock(session: Kysely<CatalogDatabase>, partition: RunPartition | null): Promise<boolean> {
  if (!partition) {
    const r = await sql<{ ok: boolean }>`select pg_try_advisory_lock(${FLEET_LOCK_CLASSID}::int, 0) as ok`.execute(session);
    return r.rows[0].ok;
  }
  const shared = await sql<{ ok: boolean }>`select pg_try_advisory_lock_shared(${FLEET_LOCK_CLASSID}::int, 0) as ok`.execute(session);
  if (!shared.rows[0].ok) return false;
  const slice = partition.count * 10_000 + partition.index;
  const own = await sql<{ ok: boolean }>`select pg_try_advisory_lock(${FLEET_LOCK_CLASSID}::int, ${slice}::int) as ok`.execute(session);
  if (own.rows[0].ok) return true;
  await sql`select pg_advisory_unlock_shared(${FLEET_LOCK_CLASSID}::int, 0)`.execute(session);
  return false;
}

/** Live runs (their own lock is held), described for the operator. */
async function describeHolders(session: Kysely<CatalogDatabase>): Promise<string[]> {
  const rows = await sql<{ id: string; holder: string; args: RunArgs; started_at: Date }>`
    select o.id, o.holder, o.args, o.started_at from operations o
     where o.kind = 'migrate' and o.status = 'running' and ${liveRun(sql.ref('o.id'))}
     order by o.id`.execute(session);
  return rows.rows.map((r) => describeRun({ id: Number(r.id), holder: r.holder, args: r.args, startedAt: r.started_at }));
}

/** SQL: the run lock of this run id is held by some session (so the run is alive). */
export function liveRun(id: ReturnType<typeof sql.ref>) {
  return sql`exists (
    select 1 from pg_locks l
     where l.locktype = 'advisory' and l.granted and l.objsubid = 2
       and l.database = (select oid from pg_database where datname = current_database())
       and l.classid = ${RUN_LOCK_CLASSID}::int::oid and l.objid = (${id})::int::oid)`;
}

/** `run 42 by alice (github:org/repo#7), pid 1234 on build-3, started 2025-01-02T03:04:05.000Z` */
export function describeRun(r: { id: number; holder: string; args: RunArgs; startedAt: Date }): string {
  const a = r.args ?? ({} as RunArgs);
  const part = a.partition ? `, partition ${a.partition.index}/${a.partition.count}` : '';
  return `run ${r.id} by ${r.holder}, pid ${a.pid ?? '?'} on ${a.host ?? '?'}, started ${new Date(r.startedAt).toISOString()}${part}`;
}

/** `alice` or `alice (github:org/repo#7)` */
export function holderName(env: NodeJS.ProcessEnv = process.env): { holder: string; ciJob: string | null } {
  const { actor, ciJob } = currentActor(env);
  return { holder: ciJob ? `${actor} (${ciJob})` : actor, ciJob };
}
