import { hostname } from 'node:os';
import { sql } from 'kysely';
import type { CatalogDb } from '../catalog/open.js';
import { currentActor } from '../catalog/actor.js';
import { LockedError } from '../errors.js';
import { TENANT_LOCK_CLASSID } from './lock-ids.js';
import { LockSession, type LockSessionHandle } from './lock-session.js';
import { lockTenant, type TenantLock, type TenantLockOptions } from './tenant-lock.js';

/** Where a tenant is now, read under its lock. */
export interface TenantNow {
  status: string;
  shard: string;
  database_name: string;
  schema_name: string;
}

/**
 * The per-tenant lock (tenant-lock.ts) for a fan-out over many tenants: the same advisory lock
 * and holder row, but requests that arrive while a statement is in flight are taken together in
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
  private takes: { slug: string; resolve: (v: Taken) => void; reject: (e: unknown) => void }[] = [];
  private releases: { slug: string; done: () => void }[] = [];
  private running: Promise<void> | null = null;
  private readonly pendingReleases = new Set<Promise<void>>();
  private readonly actor = currentActor();

  private constructor(
    private readonly db: CatalogDb,
    private readonly handle: LockSessionHandle,
    private readonly opts: TenantLockOptions,
  ) {}

  static async open(db: CatalogDb, opts: TenantLockOptions): Promise<TenantLockBatch> {
    return new TenantLockBatch(db, await LockSession.of(db).acquire(), opts);
  }

  /** Lock the tenant and read its catalog row under the lock; LockedError when it stays busy. */
  take(slug: string): Promise<Taken> {
    return new Promise<Taken>((resolve, reject) => {
      this.takes.push({ slug, resolve, reject });
      this.kick();
    });
  }

  /** Every release sent and done; the lock session handed back. */
  async close(): Promise<void> {
    while (this.running || this.takes.length || this.releases.length) {
      this.kick();
      await this.running;
    }
    await Promise.all(this.pendingReleases);
    await this.handle.release();
  }

  private kick(): void {
    if (this.running) return;
    if (this.takes.length === 0 && this.releases.length === 0) return;
    this.running = this.loop().finally(() => {
      this.running = null;
      this.kick();
    });
  }

  private async loop(): Promise<void> {
    // Releases first: a lock held past its target keeps nobody's work waiting but fills the table.
    const releases = this.releases.splice(0);
    if (releases.length) await this.unlock(releases);
    const takes = this.takes.splice(0);
    if (takes.length) await this.lock(takes);
  }

  private async unlock(batch: { slug: string; done: () => void }[]): Promise<void> {
    const slugs = batch.map((b) => b.slug);
    try {
      await this.handle.use((s) =>
        sql`with d as (delete from tenant_locks where slug = any(${slugs}::text[]) and backend_pid = pg_backend_pid())
            select count(pg_advisory_unlock(${TENANT_LOCK_CLASSID}::int, hashtext(x))) from unnest(${slugs}::text[]) as x`.execute(s),
      );
    } catch {
      // The lock session's unlock-all, when it is handed back, is the safety net.
    }
    for (const b of batch) b.done();
  }

  private async lock(batch: { slug: string; resolve: (v: Taken) => void; reject: (e: unknown) => void }[]): Promise<void> {
    const slugs = batch.map((b) => b.slug);
    let got: Set<string>;
    try {
      // The locks and their holder rows in one statement: a row is never missing while its lock is held.
      const r = await this.handle.use((s) =>
        sql<{ slug: string }>`
          with l as (select x as slug, pg_try_advisory_lock(${TENANT_LOCK_CLASSID}::int, hashtext(x)) as ok
                       from unnest(${slugs}::text[]) as x),
          ins as (
            insert into tenant_locks (slug, backend_pid, actor, ci_job, pid, host, command, started_at)
            select l.slug, pg_backend_pid(), ${this.actor.actor}, ${this.actor.ciJob}, ${process.pid}, ${hostname()}, ${this.opts.command}, now()
              from l where l.ok
            on conflict (slug) do update
              set backend_pid = excluded.backend_pid, actor = excluded.actor, ci_job = excluded.ci_job, pid = excluded.pid,
                  host = excluded.host, command = excluded.command, started_at = excluded.started_at
            returning 1)
          select slug from l where ok`.execute(s),
      );
      got = new Set(r.rows.map((x) => x.slug));
    } catch (err) {
      for (const b of batch) b.reject(err);
      return;
    }
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
    // Busy: the single-tenant path waits (up to waitMs) and names the holder.
    for (const b of batch.filter((x) => !got.has(x.slug))) {
      void this.takeAlone(b.slug).then(b.resolve, b.reject);
    }
  }

  private async read(slugs: string[]): Promise<Map<string, TenantNow>> {
    const rows = await this.db
      .selectFrom('tenants')
      .select(['slug', 'status', 'shard', 'database_name', 'schema_name'])
      .where('slug', 'in', slugs)
      .execute();
    return new Map(rows.map((r) => [r.slug, r]));
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

export interface Taken {
  lock: TenantLock;
  /** The tenant's row read under the lock; undefined when it was deleted. */
  now: TenantNow | undefined;
}

export { LockedError };
