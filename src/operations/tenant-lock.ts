import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { sql, type Kysely } from 'kysely';
import type { CatalogDb } from '../catalog/open.js';
import type { CatalogDatabase } from '../catalog/tables.js';
import { currentActor } from '../catalog/actor.js';
import { EXIT, LockedError, TenantctlError } from '../errors.js';
import { TENANT_LOCK_CLASSID } from './lock-ids.js';
import { LockSession, type LockSessionHandle } from './lock-session.js';

/**
 * The per-tenant operation lock: every command that changes a tenant (create and its resume,
 * delete, suspend, resume, the migration of its own target) holds it, so two of them never act
 * on one tenant at once. A session-level advisory lock ('tntn', hashtext(slug)) on the process's
 * lock session (one pinned catalog connection), plus a holder row in `tenant_locks` matched by that
 * connection's backend pid (one row per tenant here; one per session for TenantLockBatch), so a second process can say who holds it and since when. A crashed
 * holder's lock dies with its connection; its stale row is ignored (no live lock matches it) and
 * overwritten by the next holder.
 */
export interface TenantLock {
  readonly slug: string;
  /** Whether the lock went with its lost catalog session (lock-session.ts): another command may hold it now. */
  lost(): boolean;
  release(): Promise<void>;
}

export interface TenantLockOptions {
  /** The command holding it, shown to a second process (`tenant delete`). */
  command: string;
  /** Wait for the holder instead of failing with LockedError (exit 3). */
  wait?: boolean;
  /** With wait: give up after this long with LockedError (default: wait for ever). */
  waitMs?: number;
  signal?: AbortSignal;
  /** Called once when waiting starts, with who holds the lock. */
  onWaiting?: (holder: string) => void;
}

const POLL_MS = 200;

/**
 * The holder row of a lock session that holds many tenants' locks (TenantLockBatch):
 * `*batch:<backend pid>`, never a slug (slugs start with a letter).
 */
export const BATCH_HOLDER_PREFIX = '*batch:';

/**
 * Take the tenant's lock, or throw LockedError naming the holder (exit 3); with `wait`, poll
 * until it is free.
 *
 * @example
 *   const lock = await lockTenant(db, 'acme', { command: 'tenant delete' });
 *   try { ... } finally { await lock.release(); }
 */
export async function lockTenant(db: CatalogDb, slug: string, opts: TenantLockOptions): Promise<TenantLock> {
  const handle = await LockSession.of(db).acquire();
  try {
    await take(handle, slug, opts);
  } catch (err) {
    await handle.release();
    throw err;
  }
  let released = false;
  return {
    slug,
    lost: () => handle.lost(),
    async release() {
      if (released) return;
      released = true;
      try {
        // A lost session's locks went with it: nothing to release, and the work done under the
        // lock is not undone by saying so (the command's next step found the loss, if it had one).
        if (!handle.lost())
          await handle.use((s) =>
            sql`with d as (delete from tenant_locks where slug = ${slug} and backend_pid = pg_backend_pid())
              select pg_advisory_unlock(${TENANT_LOCK_CLASSID}::int, hashtext(${slug}))`.execute(s),
          );
      } finally {
        await handle.release();
      }
    },
  };
}

/** Run fn holding the tenant's lock. */
export async function withTenantLock<T>(db: CatalogDb, slug: string, opts: TenantLockOptions, fn: () => Promise<T>): Promise<T> {
  const lock = await lockTenant(db, slug, opts);
  try {
    return await fn();
  } finally {
    await lock.release();
  }
}

async function take(handle: LockSessionHandle, slug: string, opts: TenantLockOptions): Promise<void> {
  const { actor, ciJob } = currentActor();
  const deadline = opts.waitMs === undefined ? Infinity : Date.now() + opts.waitMs;
  let announced = false;
  let emptyLooks = 0;
  for (;;) {
    // The lock and the holder row in one statement: the row is never missing while it is held.
    const r = await handle.use((s) =>
      sql<{ ok: boolean }>`
        with l as (select pg_try_advisory_lock(${TENANT_LOCK_CLASSID}::int, hashtext(${slug})) as ok),
        ins as (
          insert into tenant_locks (slug, backend_pid, actor, ci_job, pid, host, command, started_at)
          select ${slug}, pg_backend_pid(), ${actor}, ${ciJob}, ${process.pid}, ${hostname()}, ${opts.command}, now()
            from l where l.ok
          on conflict (slug) do update
            set backend_pid = excluded.backend_pid, actor = excluded.actor, ci_job = excluded.ci_job, pid = excluded.pid,
                host = excluded.host, command = excluded.command, started_at = excluded.started_at
          returning 1)
        select ok, (select count(*) from ins) as n from l`.execute(s),
    );
    if (r.rows[0].ok) return;
    const holder = await handle.use((s) => describeTenantHolder(s, slug));
    // The holder may be between its lock and our look (or just released): look again shortly.
    if (!holder && emptyLooks++ < 5) {
      await sleep(50);
      continue;
    }
    const who = holder ?? 'another tenantctl process';
    if (!opts.wait || Date.now() >= deadline) {
      throw new LockedError(
        `tenant "${slug}" is locked by ${who}`,
        opts.wait ? 'it is still held; try again later' : 'wait for it to finish, or pass --wait to wait for it',
      );
    }
    if (!announced) {
      opts.onWaiting?.(who);
      announced = true;
    }
    if (opts.signal?.aborted)
      throw new TenantctlError('INTERRUPTED', `interrupted while waiting for the lock of tenant "${slug}"`, undefined, EXIT.interrupted);
    await sleep(POLL_MS);
  }
}

/**
 * Who holds the tenant's lock: `tenant delete by alice (github:org/repo#7), pid 1234 on build-3,
 * since 2025-01-02T03:04:05.000Z`, or null when nobody does.
 */
export async function describeTenantHolder(db: Kysely<CatalogDatabase>, slug: string): Promise<string | null> {
  // The holder's own row for this lock key first; else its session's row (a TenantLockBatch
  // holds many tenants under one row keyed by its backend pid).
  const r = await sql<{ slug: string; actor: string; ci_job: string | null; pid: number; host: string; command: string; started_at: Date }>`
    select h.slug, h.actor, h.ci_job, h.pid, h.host, h.command, h.started_at
      from pg_locks l
      join tenant_locks h on h.backend_pid = l.pid
                         and (hashtext(h.slug) = hashtext(${slug}) or h.slug = ${BATCH_HOLDER_PREFIX} || l.pid)
     where l.locktype = 'advisory' and l.granted and l.objsubid = 2
       and l.database = (select oid from pg_database where datname = current_database())
       and l.classid = ${TENANT_LOCK_CLASSID}::int::oid and l.objid = hashtext(${slug})::oid
     order by h.slug = ${BATCH_HOLDER_PREFIX} || l.pid
     limit 1`.execute(db);
  const h = r.rows[0];
  if (!h) return null;
  const other =
    h.slug === slug || h.slug.startsWith(BATCH_HOLDER_PREFIX) ? '' : ` (holding tenant "${h.slug}", whose lock key is the same)`;
  return `${h.command} by ${h.actor}${h.ci_job ? ` (${h.ci_job})` : ''}, pid ${h.pid} on ${h.host}, since ${new Date(h.started_at).toISOString()}${other}`;
}
