import { sql, type Kysely } from 'kysely';
import type { CatalogDb } from '../catalog/open.js';
import type { CatalogDatabase } from '../catalog/tables.js';
import { redactText } from '../config/redact.js';
import { errorMessage, EXIT, TenantctlError } from '../errors.js';
import { catalogPlaceOf, isCatalogSessionLost } from '../catalog/lost-sessions.js';
import { isConnectionLoss } from '../connection-loss.js';

/**
 * The process's lock session: ONE catalog connection, pinned while any lock is held, on which
 * every session-level advisory lock of this process is taken (the fleet run lock, tenant locks).
 *
 * Why one: the catalog pool has two connections and they count against its shard's budget; a
 * pinned connection per lock kind would leave none for ordinary catalog work. Why session-level
 * locks: a crashed process's locks die with its connection, so nothing needs cleaning up.
 *
 * Statements on the session run one at a time (a transaction on it is never interleaved with a
 * lock statement of another caller). The connection goes back to the pool when the last holder
 * releases, after an unlock-all as a safety net.
 *
 * @example
 *   const h = await LockSession.of(db).acquire();
 *   try { await h.use((s) => sql`select pg_try_advisory_lock(1, 2)`.execute(s)); } finally { await h.release(); }
 */
export class LockSession {
  private static readonly sessions = new WeakMap<CatalogDb, LockSession>();

  static of(db: CatalogDb): LockSession {
    let s = LockSession.sessions.get(db);
    if (!s) {
      s = new LockSession(db);
      LockSession.sessions.set(db, s);
    }
    return s;
  }

  private refs = 0;
  private pinned: Promise<Pinned> | null = null;
  private chain: Promise<unknown> = Promise.resolve();

  private constructor(private readonly db: CatalogDb) {}

  /**
   * Whether the pinned session's connection was lost (the catalog server gone, or the session
   * terminated): its session-level locks died with it, and another command may hold them now.
   * No round trip: the connection's watcher recorded it (src/catalog/lost-sessions.ts).
   */
  lost(): boolean {
    return this.pid !== undefined && isCatalogSessionLost(this.db, this.pid);
  }

  private pid: number | undefined;

  /** Keep the session pinned until the handle is released. Throws UNREACHABLE if the catalog is. */
  async acquire(): Promise<LockSessionHandle> {
    // A lost session stays pinned until its holders release it: nothing new is locked on it.
    if (this.pinned && this.lost()) throw locksLostError(this.db);
    this.refs++;
    if (!this.pinned) {
      this.pid = undefined;
      const p = pin(this.db).then((x) => {
        if (this.pinned === p) this.pid = x.pid;
        return x;
      });
      this.pinned = p;
      p.catch(() => {
        if (this.pinned === p) this.pinned = null;
      });
    }
    const pinned = this.pinned;
    try {
      await pinned;
    } catch (err) {
      this.refs--;
      throw err;
    }
    let released = false;
    return {
      use: <T>(fn: (s: Kysely<CatalogDatabase>) => Promise<T>) => this.serial(pinned, fn),
      lost: () => this.lost(),
      release: async () => {
        if (released) return;
        released = true;
        if (--this.refs > 0) return;
        // Last holder: hand the connection back (its locks were each released by their holder).
        if (this.pinned === pinned) this.pinned = null;
        await this.chain.catch(() => undefined);
        await (await pinned).unpin();
      },
    };
  }

  private serial<T>(pinned: Promise<Pinned>, fn: (s: Kysely<CatalogDatabase>) => Promise<T>): Promise<T> {
    const next = this.chain
      .catch(() => undefined)
      .then(async () => {
        if (this.lost()) throw locksLostError(this.db);
        try {
          return await fn((await pinned).session);
        } catch (err) {
          // "Client has encountered a connection error and is not queryable" says nothing of the locks.
          if (this.lost() || isConnectionLoss(err)) throw locksLostError(this.db, err);
          throw err;
        }
      });
    this.chain = next.catch(() => undefined);
    return next;
  }
}

/**
 * The one error once the lock session's connection is gone: the tenant locks of this command went
 * with it, so another command may be working on those tenants now and this one does no more.
 */
export function locksLostError(db?: object, cause?: unknown): TenantctlError {
  return new TenantctlError(
    'SHARD_LOST',
    `lost the catalog connection that held this command's tenant locks, to ${catalogPlaceOf(db)}${cause ? ` (${redactText(errorMessage(cause)).split('\n')[0]})` : ''}: another command may have taken them since, so this one stops where it is`,
    'run the same command again once the catalog answers: it finishes or undoes what was left (tenantctl doctor lists what a stopped command left)',
    EXIT.failed,
    cause === undefined ? undefined : { cause },
  );
}

export interface LockSessionHandle {
  /** Run fn on the pinned session, after every earlier statement on it finished. */
  use<T>(fn: (s: Kysely<CatalogDatabase>) => Promise<T>): Promise<T>;
  /** Whether the session (and every lock taken on it) was lost. */
  lost(): boolean;
  /** This holder is done (its own locks already released); the last one unpins. */
  release(): Promise<void>;
}

interface Pinned {
  session: Kysely<CatalogDatabase>;
  /** Its backend pid: how its loss is recognised. */
  pid: number;
  unpin(): Promise<void>;
}

function pin(db: CatalogDb): Promise<Pinned> {
  return new Promise<Pinned>((resolve, reject) => {
    let free!: () => void;
    const freed = new Promise<void>((r) => (free = r));
    let settled = false;
    const held = db.connection().execute(async (session) => {
      const { rows } = await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(session);
      settled = true;
      resolve({
        session,
        pid: rows[0].pid,
        async unpin() {
          free();
          await held.catch(() => undefined);
        },
      });
      await freed;
      await sql`select pg_advisory_unlock_all()`.execute(session).catch(() => undefined);
    });
    held.catch((err) => {
      if (!settled) reject(catalogDown(err));
    });
  });
}

/** A failure to reach the catalog while taking a lock, as an UNREACHABLE error. */
export function catalogDown(err: unknown): TenantctlError {
  if (err instanceof TenantctlError) return err;
  return new TenantctlError(
    'UNREACHABLE',
    `the catalog is unreachable: ${redactText(errorMessage(err))}`,
    'check catalog.url (or catalog.shard) in the config and that the server runs',
    EXIT.failed,
    { cause: err },
  );
}
