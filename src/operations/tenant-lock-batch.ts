import { hostname } from 'node:os';
import { sql } from 'kysely';
import type { CatalogDb } from '../catalog/open.js';
import { currentActor } from '../catalog/actor.js';
import { textArrayParam } from '../pg-array.js';
import { LockedError } from '../errors.js';
import { TENANT_LOCK_CLASSID } from './lock-ids.js';
import { LockSession, type LockSessionHandle } from './lock-session.js';
import { BATCH_HOLDER_PREFIX, lockTenant, type TenantLock, type TenantLockOptions } from './tenant-lock.js';

/** Where a tenant is now, read under its lock. */
export interface TenantNow {
  status: string;
  shard: string;
  database_name: string;
  schema_name: string;
}

/**
 * The per-tenant lock (tenant-lock.ts) for a fan-out over many tenants: the same advisory lock,
 * one holder row for all of them (holderRow), and requests that arrive while a statement is in flight are taken together in
 * the next one, and so are releases. A fleet of small targets otherwise pays two serialized
 * catalog commits per target on the process's one lock session, which costs more than migrating
 * the target. Each tenant is still locked before its work starts and until it has ended; batches
 * stay as small as the fan-out's concurrency (PostgreSQL's lock table is small).
 *
 * A tenant whose lock is busy falls back to lockTenant (waiting, naming the holder). The
 * tenant's catalog row is read after the lock is held (a statement of its own: one taken with
 * the lock would read a snapshot older than the lock), so a tenant deleted meanwhile is seen.
 *
 * @example
 *   const locks = await TenantLockBatch.open(db, { command: 'migrate up', wait: true, waitMs: 5000 });
 *   const { lock, now } = await locks.take('acme'); // now: undefined when the tenant is gone
 *   try { ... } finally { lock.release(); }
 *   await locks.close();
 */
export class TenantLockBatch {
  private takes: Take[] = [];
  private releases: Release[] = [];
  private running: Promise<void> | null = null;
  private readonly pendingReleases = new Set<Promise<void>>();
  private readonly actor = currentActor();
  private upcoming: string[] = [];
  private nextUp = 0;
  private aheadLimit = 0;
  /** Locks taken ahead (lookAhead), by tenant; undefined when it could not be taken then. */
  private readonly ahead = new Map<string, Promise<Taken | undefined>>();
  /** Tenants take() was called for: never taken ahead again. */
  private readonly requested = new Set<string>();
  private closing = false;
  private releaseTimer: NodeJS.Timeout | null = null;
  private flushReleases = false;
  /** The session's holder row is in (holderRow); deleted by close(). */
  private holderWritten = false;

  private constructor(
    private readonly db: CatalogDb,
    private readonly handle: LockSessionHandle,
    private readonly opts: TenantLockOptions,
  ) {}

  static async open(db: CatalogDb, opts: TenantLockOptions): Promise<TenantLockBatch> {
    return new TenantLockBatch(db, await LockSession.of(db).acquire(), opts);
  }

  /**
   * The tenants the caller will take, in the order it will most likely take them (a fan-out's
   * queue). Up to `limit` of them are then locked ahead, in the statements that take the others:
   * a fan-out over thousands of small targets otherwise pays a lock statement and a read for
   * every few targets on the one serial lock session. `limit` stays far below PostgreSQL's lock
   * table (max_locks_per_transaction × max_connections, 6,400 by default).
   */
  lookAhead(slugs: string[], limit = LOOK_AHEAD): void {
    this.upcoming = slugs;
    this.nextUp = 0;
    this.aheadLimit = limit;
  }

  /** Lock the tenant and read its catalog row under the lock; LockedError when it stays busy. */
  take(slug: string): Promise<Taken> {
    this.requested.add(slug);
    const early = this.ahead.get(slug);
    if (early) {
      this.ahead.delete(slug);
      this.fillAhead();
      return early.then((t) => t ?? this.takeNow(slug));
    }
    const p = this.takeNow(slug);
    this.fillAhead();
    return p;
  }

  private takeNow(slug: string): Promise<Taken> {
    return new Promise<Taken>((resolve, reject) => {
      // Not taken ahead, so never resolved with undefined (busy goes to takeAlone).
      this.takes.push({ slug, resolve: resolve as (v: Taken | undefined) => void, reject });
      this.kick();
    });
  }

  /** Below half the look-ahead, lock the next upcoming tenants nobody asked for yet (with the next statement). */
  private fillAhead(): void {
    if (this.closing || this.ahead.size > this.aheadLimit / 2) return;
    while (this.ahead.size < this.aheadLimit && this.nextUp < this.upcoming.length) {
      const slug = this.upcoming[this.nextUp++];
      // Advisory locks stack within a session: never take one twice.
      if (this.requested.has(slug) || this.ahead.has(slug)) continue;
      this.ahead.set(
        slug,
        new Promise<Taken | undefined>((resolve) => this.takes.push({ slug, resolve, reject: () => resolve(undefined), early: true })),
      );
    }
    this.kick();
  }

  /** Whether the lock session was lost: every lock of the batch went with it (lock-session.ts). */
  lost(): boolean {
    return this.handle.lost();
  }

  /** Every release sent and done, locks taken ahead and never claimed released; the lock session handed back. */
  async close(): Promise<void> {
    this.closing = true;
    if (this.releaseTimer) clearTimeout(this.releaseTimer);
    while (this.running || this.takes.length || this.releases.length) {
      this.kick();
      await this.running;
    }
    const unclaimed = await Promise.all(this.ahead.values());
    this.ahead.clear();
    for (const t of unclaimed) if (t) void t.lock.release();
    while (this.running || this.releases.length) {
      this.kick();
      await this.running;
    }
    await Promise.all(this.pendingReleases);
    // The row is the lock session's: another batch of this process on it may still hold locks.
    if (this.holderWritten && dropHolder(this.db) === 0) {
      await this.handle
        .use((s) => sql`delete from tenant_locks where slug = ${BATCH_HOLDER_PREFIX} || pg_backend_pid()`.execute(s))
        .catch(() => undefined); // a row left behind describes no lock (see holderRow)
    }
    await this.handle.release();
  }

  private kick(): void {
    if (this.running) return;
    if (this.takes.length === 0 && this.releases.length === 0) return;
    // Releases alone wait to ride with the next takes, unless many are queued, the batch is
    // closing, or they have waited a second: a finished tenant stays locked a moment longer.
    if (this.takes.length === 0 && this.releases.length < RELEASE_BATCH && !this.closing) {
      this.releaseTimer ??= setTimeout(() => {
        this.releaseTimer = null;
        this.flushReleases = true;
        this.kick();
      }, RELEASE_WAIT_MS);
      if (!this.flushReleases) return;
    }
    this.flushReleases = false;
    this.running = this.loop().finally(() => {
      this.running = null;
      this.kick();
    });
  }

  private async loop(): Promise<void> {
    // Releases go first (a lock held past its target keeps nobody's work waiting but fills the
    // table), in the same statement as the takes when no tenant is in both: one round trip
    // on the serial lock session instead of two.
    const releases = this.releases.splice(0);
    const takes = this.takes.splice(0);
    const releasing = new Set(releases.map((r) => r.slug));
    if (takes.some((t) => releasing.has(t.slug))) {
      await this.unlock(releases);
      await this.lock(takes, []);
    } else if (takes.length) await this.lock(takes, releases);
    else if (releases.length) await this.unlock(releases);
  }

  private async unlock(batch: Release[]): Promise<void> {
    const slugs = batch.map((b) => b.slug);
    try {
      // No holder row per tenant to delete (see holderRow): nothing written, nothing committed.
      await this.handle.use((s) =>
        sql`select count(pg_advisory_unlock(${TENANT_LOCK_CLASSID}::int, hashtext(x))) from unnest(${textArrayParam(slugs)}::text[]) as x`.execute(
          s,
        ),
      );
    } catch {
      // The lock session's unlock-all, when it is handed back, is the safety net.
    }
    for (const b of batch) b.done();
  }

  /** Take `batch` (and release `releases`, none of them in `batch`, in the same statement). */
  private async lock(batch: Take[], releases: Release[]): Promise<void> {
    const slugs = batch.map((b) => b.slug);
    const freed = releases.map((b) => b.slug);
    let got: Set<string>;
    try {
      // The locks and (with the first) the session's holder row in one statement: the row is never
      // missing while a lock is held. The one row the final select returns reads `u`, so the
      // unlocks always run.
      const holder = this.holderWritten ? sql`select 1` : this.holderRow();
      const r = await this.handle.use((s) =>
        sql<{ released: string; got: string[] }>`
          with h as (${holder}),
          u as (select count(pg_advisory_unlock(${TENANT_LOCK_CLASSID}::int, hashtext(x))) as n from unnest(${textArrayParam(freed)}::text[]) as x),
          l as (select array(select x from unnest(${textArrayParam(slugs)}::text[]) as x
                              where pg_try_advisory_lock(${TENANT_LOCK_CLASSID}::int, hashtext(x))) as got)
          select (select n from u) as released, l.got, (select count(*) from h) as holder from l`.execute(s),
      );
      if (!this.holderWritten) keepHolder(this.db);
      this.holderWritten = true;
      got = new Set(r.rows[0]?.got ?? []);
    } catch (err) {
      for (const b of releases) b.done();
      for (const b of batch) b.reject(err);
      return;
    }
    for (const b of releases) b.done();
    const held = batch.filter((b) => got.has(b.slug));
    let rows = new Map<string, TenantNow>();
    if (held.length) {
      try {
        rows = await this.read(held.map((b) => b.slug));
      } catch (err) {
        for (const b of held) this.releaseLater(b.slug);
        for (const b of held) b.reject(err);
        rows = new Map();
        held.length = 0;
      }
    }
    for (const b of held) b.resolve({ lock: this.batchLock(b.slug), now: rows.get(b.slug) });
    // Busy: the single-tenant path waits (up to waitMs) and names the holder; a tenant taken
    // ahead is simply not held, and its own take() tries again when its turn comes.
    for (const b of batch.filter((x) => !got.has(x.slug))) {
      if (b.early) b.resolve(undefined);
      else void this.takeAlone(b.slug).then(b.resolve, b.reject);
    }
  }

  /**
   * The tenants' rows, read on the lock session right after their locks: it waits for the lock
   * statement anyway, and the catalog pool's other connection stays free for the run's writer
   * (whose statements the read used to queue behind). One array parameter, not one per slug.
   */
  private async read(slugs: string[]): Promise<Map<string, TenantNow>> {
    const r = await this.handle.use((s) =>
      sql<TenantNow & { slug: string }>`
        select slug, status, shard, database_name, schema_name from tenants where slug = any(${textArrayParam(slugs)}::text[])`.execute(s),
    );
    return new Map(r.rows.map((x) => [x.slug, x]));
  }

  /**
   * ONE holder row for every tenant this session locks, keyed by its backend (`*batch:<pid>`, never
   * a slug): `describeTenantHolder` finds a lock's holder through pg_locks by backend pid and falls
   * back to it. A row per tenant cost the catalog 5,000 inserts and 5,000 deletes per 5,000-target
   * run (and their vacuum). A SIGKILLed run leaves the row with no lock behind it (ignored, as a
   * stale tenant row is), overwritten by the next batch on a backend of that pid.
   */
  private holderRow() {
    return sql`
      insert into tenant_locks (slug, backend_pid, actor, ci_job, pid, host, command, started_at)
      values (${BATCH_HOLDER_PREFIX} || pg_backend_pid(), pg_backend_pid(), ${this.actor.actor}, ${this.actor.ciJob}, ${process.pid},
              ${hostname()}, ${this.opts.command}, now())
      on conflict (slug) do update
        set backend_pid = excluded.backend_pid, actor = excluded.actor, ci_job = excluded.ci_job, pid = excluded.pid,
            host = excluded.host, command = excluded.command, started_at = excluded.started_at
      returning 1`;
  }

  private async takeAlone(slug: string): Promise<Taken> {
    const lock: TenantLock = await lockTenant(this.db, slug, { ...this.opts, wait: this.opts.wait ?? false });
    try {
      return { lock, now: (await this.read([slug])).get(slug) };
    } catch (err) {
      await lock.release();
      throw err;
    }
  }

  private batchLock(slug: string): TenantLock {
    let released = false;
    return {
      slug,
      lost: () => this.handle.lost(),
      release: async () => {
        if (released) return;
        released = true;
        await this.releaseLater(slug);
      },
    };
  }

  /** Queued for the next statement; resolves when it was sent. */
  private releaseLater(slug: string): Promise<void> {
    const p = new Promise<void>((done) => {
      this.releases.push({ slug, done });
      this.kick();
    });
    this.pendingReleases.add(p);
    void p.then(() => this.pendingReleases.delete(p));
    return p;
  }
}

/** Open batches of this process whose session holder row is written, by catalog (one lock session each). */
const holders = new WeakMap<CatalogDb, number>();
const keepHolder = (db: CatalogDb) => holders.set(db, (holders.get(db) ?? 0) + 1);
function dropHolder(db: CatalogDb): number {
  const n = (holders.get(db) ?? 1) - 1;
  holders.set(db, n);
  return n;
}

interface Take {
  slug: string;
  /** Undefined only for a take ahead that did not get the lock. */
  resolve: (v: Taken | undefined) => void;
  reject: (e: unknown) => void;
  /** Taken ahead (lookAhead): resolved with undefined instead of waiting when busy. */
  early?: boolean;
}

/**
 * How many tenants are locked ahead of a fan-out at most (see lookAhead): twice a shared message of
 * `migrate up` (BATCH_SIZE), so a message's targets are already locked when it is built. With the
 * targets in flight (a shard's message connections × BATCH_SIZE, at most 1,024 in all:
 * MAX_TARGETS_IN_FLIGHT) that is at most 1,280 advisory locks on the one session, a fifth of
 * PostgreSQL's default lock table; 512 on one shard of this 2-core machine.
 */
const LOOK_AHEAD = 256;
/** Releases sent on their own once this many are queued... */
const RELEASE_BATCH = 64;
/** ...or once the oldest has waited this long. */
const RELEASE_WAIT_MS = 1000;

interface Release {
  slug: string;
  done: () => void;
}

export interface Taken {
  lock: TenantLock;
  /** The tenant's row read under the lock; undefined when it was deleted. */
  now: TenantNow | undefined;
}

export { LockedError };
