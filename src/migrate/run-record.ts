import { hostname } from 'node:os';
import { sql, type Kysely } from 'kysely';
import { currentActor } from '../catalog/actor.js';
import type { CatalogDb } from '../catalog/open.js';
import type { CatalogDatabase, MigrateTargetRow, MigrateTargetStatus } from '../catalog/tables.js';
import { redactDeep, redactText } from '../config/redact.js';
import { EXIT, errorMessage, LockedError, TenantctlError, UsageError } from '../errors.js';
import type { Partition } from './plan.js';
import { FLEET_LOCK_CLASSID, RUN_LOCK_CLASSID } from '../operations/lock-ids.js';
import { catalogDown, LockSession } from '../operations/lock-session.js';

/**
 * The run record and run lock of `migrate up`, in the catalog.
 *
 * - Run lock: a session advisory lock on a catalog connection pinned for the run's life, so a
 *   crashed run's lock dies with its process. A whole-fleet run takes it exclusively; the jobs of
 *   a `--partition I/N` CI matrix take it shared, plus an exclusive lock on their own slice, so
 *   slices run side by side but never beside a whole-fleet run or a second copy of themselves.
 *   The pinned connection is the process's lock session (src/operations/lock-session.ts), one
 *   of the catalog pool's two, shared with tenant locks, so the catalog shard's budget holds.
 * - Run record: an operations row (kind 'migrate') naming the holder (user, CI job, pid, host),
 *   plus one migrate_targets row per target that had work, updated as each target finishes. Each
 *   run also holds an advisory lock keyed by its id, so a 'running' row whose lock is free is known
 *   to be dead (crashed) and can be resumed.
 */

// Advisory lock classids in the catalog database: 'tnfl' (fleet run lock) and 'tnrn' (one run).
export { FLEET_LOCK_CLASSID, RUN_LOCK_CLASSID };
const LOCK_POLL_MS = 250;

export type RunStatus = 'running' | 'succeeded' | 'failed' | 'interrupted' | 'crashed';

export interface RunArgs {
  pid: number;
  host: string;
  ciJob: string | null;
  partition: Partition | null;
  [key: string]: unknown;
}

export interface RunInfo {
  id: number;
  status: RunStatus;
  holder: string;
  args: RunArgs;
  startedAt: Date;
  finishedAt: Date | null;
}

export interface RunLock {
  /** Run fn on the pinned catalog session (one statement at a time); the run's own lock is taken on it. */
  use<T>(fn: (session: Kysely<CatalogDatabase>) => Promise<T>): Promise<T>;
  readonly exclusive: boolean;
  /** Release the run's locks and the lock session. */
  release(): Promise<void>;
}

export interface AcquireOptions {
  partition?: Partition | null;
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
    if (opts.signal?.aborted) throw new TenantctlError('INTERRUPTED', 'interrupted while waiting for the run lock', undefined, EXIT.interrupted);
    await sleep(LOCK_POLL_MS);
    if (opts.signal?.aborted) throw new TenantctlError('INTERRUPTED', 'interrupted while waiting for the run lock', undefined, EXIT.interrupted);
  }
}

async function tryFleetLock(session: Kysely<CatalogDatabase>, partition: Partition | null): Promise<boolean> {
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
function liveRun(id: ReturnType<typeof sql.ref>) {
  return sql`exists (
    select 1 from pg_locks l
     where l.locktype = 'advisory' and l.granted and l.objsubid = 2
       and l.database = (select oid from pg_database where datname = current_database())
       and l.classid = ${RUN_LOCK_CLASSID}::int::oid and l.objid = (${id})::int::oid)`;
}

/** `run 42 by alice (github:org/repo#7), pid 1234 on build-3, started 2025-01-02T03:04:05.000Z` */
export function describeRun(r: Pick<RunInfo, 'id' | 'holder' | 'args' | 'startedAt'>): string {
  const a = r.args ?? ({} as RunArgs);
  const part = a.partition ? `, partition ${a.partition.index}/${a.partition.count}` : '';
  return `run ${r.id} by ${r.holder}, pid ${a.pid ?? '?'} on ${a.host ?? '?'}, started ${new Date(r.startedAt).toISOString()}${part}`;
}

/** `alice` or `alice (github:org/repo#7)` */
export function holderName(env: NodeJS.ProcessEnv = process.env): { holder: string; ciJob: string | null } {
  const { actor, ciJob } = currentActor(env);
  return { holder: ciJob ? `${actor} (${ciJob})` : actor, ciJob };
}

/**
 * Create the run's operations row and take its own lock, in one transaction on the pinned
 * session, so the row is never visible without its lock (a sibling partition would take it for a
 * crashed run). With the fleet lock held exclusively, 'running' rows of dead runs become 'crashed'.
 */
export async function createRun(lock: RunLock, args: Record<string, unknown>, progress: Record<string, unknown>): Promise<RunInfo> {
  const { holder, ciJob } = holderName();
  const fullArgs: RunArgs = { pid: process.pid, host: hostname(), ciJob, partition: null, ...args };
  return lock.use((session) => session.transaction().execute(async (tx) => {
    if (lock.exclusive) await markCrashed(tx);
    const row = await tx
      .insertInto('operations')
      .values({
        kind: 'migrate',
        status: 'running',
        tenant_slug: null,
        holder,
        args: JSON.stringify(redactDeep(fullArgs)),
        progress: JSON.stringify(progress),
      })
      .returning(['id', 'started_at'])
      .executeTakeFirstOrThrow();
    const id = Number(row.id);
    await sql`select pg_advisory_lock(${RUN_LOCK_CLASSID}::int, ${id}::int)`.execute(tx);
    return { id, status: 'running' as const, holder, args: fullArgs, startedAt: row.started_at, finishedAt: null };
  }));
}

async function markCrashed(db: Kysely<CatalogDatabase>): Promise<void> {
  await sql`update operations o set status = 'crashed', finished_at = now()
             where o.kind = 'migrate' and o.status = 'running' and not ${liveRun(sql.ref('o.id'))}`.execute(db);
}

/** A run by id, or a usage error naming how to find one. */
export async function getRun(db: Kysely<CatalogDatabase>, id: number): Promise<RunInfo> {
  const r = await db.selectFrom('operations').selectAll().where('id', '=', id).where('kind', '=', 'migrate').executeTakeFirst();
  if (!r) {
    throw new UsageError('BAD_INPUT', `no migrate run ${id} in the catalog`, 'the run id is printed at the start of migrate up (and in its JSON document as "run")');
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

/** The targets of a run, in plan order. */
export async function runTargets(db: Kysely<CatalogDatabase>, id: number): Promise<MigrateTargetRow[]> {
  const rows = await db.selectFrom('migrate_targets').selectAll().where('run_id', '=', id).orderBy('position').execute();
  return rows.map((r) => ({ ...r, run_id: Number(r.run_id) }));
}

export interface NewTargetRow {
  target: string;
  position: number;
  model: string;
  shard: string;
  database_name: string;
  schema_name: string;
  tenants: string[];
}

/** Record the targets that have work, all 'pending', in one statement. */
export async function insertTargets(db: Kysely<CatalogDatabase>, runId: number, rows: NewTargetRow[]): Promise<void> {
  for (let i = 0; i < rows.length; i += 5000) {
    const chunk = rows.slice(i, i + 5000);
    await sql`
      insert into migrate_targets (run_id, target, position, model, shard, database_name, schema_name, tenants, status)
      select ${runId}, x.target, x.position, x.model, x.shard, x.database_name, x.schema_name, x.tenants, 'pending'
        from jsonb_to_recordset(${JSON.stringify(chunk)}::jsonb)
          as x(target text, position int, model text, shard text, database_name text, schema_name text, tenants text[])
      on conflict (run_id, target) do nothing`.execute(db);
  }
}

/** Finish the run: status, end time and final progress. */
export async function finishRun(
  db: Kysely<CatalogDatabase>,
  runId: number,
  status: RunStatus,
  progress: Record<string, unknown>,
): Promise<void> {
  await db
    .updateTable('operations')
    .set({ status, finished_at: new Date(), heartbeat_at: new Date(), progress: JSON.stringify(progress) })
    .where('id', '=', runId)
    .execute();
}

/** Counts of the run's target rows by status (for the run's final status after a resume). */
export async function runTargetCounts(db: Kysely<CatalogDatabase>, runId: number): Promise<Record<MigrateTargetStatus, number>> {
  const rows = await db
    .selectFrom('migrate_targets')
    .select(['status', sql<number>`count(*)::int`.as('n')])
    .where('run_id', '=', runId)
    .groupBy('status')
    .execute();
  const out: Record<MigrateTargetStatus, number> = { pending: 0, succeeded: 0, failed: 0, not_run: 0 };
  for (const r of rows) out[r.status] = r.n;
  return out;
}

/** The last finished state (succeeded or failed) of each target, over all runs. */
export async function lastRunByTarget(
  db: Kysely<CatalogDatabase>,
  targets: string[],
): Promise<Map<string, { runId: number; status: MigrateTargetStatus; error: unknown; finishedAt: Date | null }>> {
  const out = new Map<string, { runId: number; status: MigrateTargetStatus; error: unknown; finishedAt: Date | null }>();
  if (targets.length === 0) return out;
  const rows = await sql<{ target: string; run_id: string; status: MigrateTargetStatus; error: unknown; finished_at: Date | null }>`
    select distinct on (target) target, run_id, status, error, finished_at
      from migrate_targets
     where target = any(${targets}::text[]) and status in ('succeeded', 'failed')
     order by target, run_id desc`.execute(db);
  for (const r of rows.rows) out.set(r.target, { runId: Number(r.run_id), status: r.status, error: r.error, finishedAt: r.finished_at });
  return out;
}

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
  /** Pool targets: every active or suspended pool tenant of this shard follows it. */
  poolShard?: string;
  /** Event per tenant: what happened to it. */
  event?: { action: string; result: string; details: Record<string, unknown>; tenants: string[] };
}

/**
 * Writes finished targets to the catalog: each target's state row, its tenants' schema_version and
 * their events, in ONE statement (one transaction) per batch. Targets finish faster than one
 * round trip each when many run at once, so whatever queued up while a write was in flight goes in
 * the next statement together; a target's rows are never split across transactions. A crash
 * loses at most the targets not yet written, which `--resume` re-runs and finds done.
 */
export class CatalogWriter {
  /** Records already as JSON: objects die young; a waiting record costs a short string. */
  private queue: string[] = [];
  private flushing: Promise<void> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private delay: NodeJS.Timeout | null = null;
  private readonly actor: { actor: string; ciJob: string | null };
  /** The first failure to write; the run reports it at the end. */
  error: unknown = null;
  written = 0;

  constructor(
    private readonly db: Kysely<CatalogDatabase>,
    private readonly runId: number | null,
    private readonly command: string,
    private readonly progress: () => Record<string, unknown>,
    heartbeatMs = 10_000,
    /** How long finished targets may wait to be written together (0: write at once). */
    private readonly batchMs = 50,
  ) {
    this.actor = currentActor();
    if (runId !== null) {
      this.timer = setInterval(() => this.kick(true), heartbeatMs);
      this.timer.unref();
    }
  }

  push(record: TargetRecord): void {
    this.queue.push(JSON.stringify(rowOf(record)));
    // A statement per finished target would cost the catalog more than the targets cost their
    // shards: gather for a moment (a crash loses at most this much, which --resume re-checks).
    if (this.queue.length >= 500 || this.batchMs === 0) this.kick(false);
    else if (!this.delay) {
      this.delay = setTimeout(() => {
        this.delay = null;
        this.kick(false);
      }, this.batchMs);
    }
  }

  /** Write everything queued; resolves when the catalog has it (or the write failed). */
  async flush(): Promise<void> {
    if (this.delay) clearTimeout(this.delay);
    this.delay = null;
    while (this.flushing || this.queue.length > 0) {
      if (!this.flushing) this.kick(false);
      await this.flushing;
    }
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.flush();
  }

  private kick(heartbeat: boolean): void {
    if (this.flushing) return;
    if (this.queue.length === 0 && !heartbeat) return;
    this.flushing = this.loop().finally(() => {
      this.flushing = null;
      if (this.queue.length >= 500) this.kick(false);
      else if (this.queue.length > 0 && !this.delay) {
        this.delay = setTimeout(() => {
          this.delay = null;
          this.kick(false);
        }, this.batchMs);
      }
    });
  }

  private async loop(): Promise<void> {
    do {
      const batch = this.queue.splice(0, 2000);
      try {
        await this.write(batch);
        this.written += batch.length;
      } catch (err) {
        this.error ??= err;
      }
    } while (this.queue.length > 0);
  }

  private async write(batch: string[]): Promise<void> {
    const runId = this.runId;
    await sql`
      with d as (
        select * from jsonb_to_recordset(${`[${batch.join(',')}]`}::jsonb) as x(
          target text, status text, applied text[], error jsonb, started_at timestamptz, duration_ms int,
          version text, slugs text[], pool_shard text, ev_action text, ev_result text, ev_details jsonb, ev_tenants text[])
      ),
      upd as (
        update migrate_targets m
           set status = d.status, applied = d.applied, error = d.error, started_at = d.started_at,
               finished_at = now(), duration_ms = d.duration_ms
          from d
         where m.run_id = ${runId}::bigint and m.target = d.target and d.status is not null
        returning 1
      ),
      ten as (
        update tenants t set schema_version = d.version, updated_at = now()
          from d
         where d.version is not null
           and (t.slug = any(d.slugs) or (d.pool_shard is not null and t.model = 'pool' and t.shard = d.pool_shard
                                          and t.status in ('active', 'suspended')))
           and t.schema_version is distinct from d.version
        returning 1
      ),
      ev as (
        insert into events (actor, ci_job, command, tenant_slug, action, result, details)
        select ${this.actor.actor}, ${this.actor.ciJob}, ${this.command}, s.slug, d.ev_action, d.ev_result,
               d.ev_details || jsonb_build_object('run', ${runId}::bigint)
          from d cross join lateral unnest(d.ev_tenants) as s(slug)
         where d.ev_action is not null
        returning 1
      ),
      op as (
        update operations set heartbeat_at = now(), progress = ${JSON.stringify(this.progress())}::jsonb
         where id = ${runId}::bigint
        returning 1
      )
      select (select count(*) from upd) as targets`.execute(this.db);
  }
}

/** A record as the row the batch statement reads (jsonb_to_recordset). */
function rowOf(r: TargetRecord) {
  return {
    target: r.target,
    status: r.status ?? null,
    applied: r.applied ?? [],
    error: r.error === undefined ? null : redactDeep(r.error),
    started_at: r.startedAt?.toISOString() ?? null,
    duration_ms: r.durationMs === undefined ? null : Math.round(r.durationMs),
    version: r.version ?? null,
    slugs: r.slugs ?? [],
    pool_shard: r.poolShard ?? null,
    ev_action: r.event?.action ?? null,
    ev_result: r.event?.result ?? null,
    // Target and migration ids only, plus an error that was redacted where it was made; the
    // redaction pass is kept for the error, where text from PostgreSQL may quote anything.
    ev_details: r.event ? (r.event.details.error === undefined ? r.event.details : redactDeep(r.event.details)) : null,
    ev_tenants: r.event?.tenants ?? [],
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
