import type { CatalogDb } from '../catalog/open.js';
import type { TenantRow } from '../catalog/tables.js';
import { findTenant } from '../catalog/tenants.js';
import { TenantLockBatch } from '../operations/tenant-lock-batch.js';
import type { TenantLock, TenantLockOptions } from '../operations/tenant-lock.js';
import { RECORD_ONLY_KINDS } from '../operations/sweep/killed-records.js';
import { runningRecords } from '../operations/sweep/records.js';

/**
 * What the rows of one `tenant create --from-file` run share, so a row costs the catalog two
 * statements of its own (recorded-tenant.ts) instead of ten:
 * - the tenants' locks, taken in batches a little ahead of the fan-out, with their catalog rows
 *   read under them (tenant-lock-batch.ts), instead of a lock, an unlock and a read per row on the
 *   process's one serial lock session;
 * - ONE look for the running records killed creates (and deletes, suspends…) left, for the
 *   whole file, instead of one per row. A row of a tenant the catalog holds, or one the look
 *   found a record for, is swept under its lock as a single create is; any other is new and has
 *   nothing to sweep (a create records itself with its tenant row, so a killed one leaves both).
 */
export class BulkRun {
  private constructor(
    private readonly db: CatalogDb,
    private readonly locks: TenantLockBatch,
    private readonly killed: Set<string>,
  ) {}

  static async open(db: CatalogDb, slugs: string[], opts: TenantLockOptions & { concurrency: number }): Promise<BulkRun> {
    const wanted = new Set(slugs);
    const killed = new Set(
      (await runningRecords(db, RECORD_ONLY_KINDS)).map((r) => r.tenant_slug ?? '').filter((slug) => wanted.has(slug)),
    );
    const locks = await TenantLockBatch.open(db, opts);
    // A few rows ahead of the ones running: enough that a batch serves several rows, few enough
    // that another command on a later row of the file is not kept waiting long.
    locks.lookAhead(slugs, Math.max(8, opts.concurrency * 2));
    return new BulkRun(db, locks, killed);
  }

  /** The tenant's lock and its catalog row read under it (undefined: a new tenant). */
  async take(slug: string): Promise<{ lock: TenantLock; tenant: TenantRow | undefined }> {
    const { lock: batched, now } = await this.locks.take(slug);
    // The batch sends a release with its next statement, or a second later when none comes (the
    // locks ahead are taken already): the row must not wait for that, or each of a fan-out's
    // workers idles up to a second per row (28 s instead of ~10 for 200 rows). Its tenant stays
    // locked that moment longer; close() sends what is left.
    const lock: TenantLock = {
      slug,
      lost: () => batched.lost(),
      release: async () => void batched.release(),
    };
    try {
      // The batch reads where a tenant is; a re-run row of an existing one needs all of it.
      return { lock, tenant: now ? await findTenant(this.db, slug) : undefined };
    } catch (err) {
      await lock.release();
      throw err;
    }
  }

  /** A running record of the tenant was there when the run started (it may be a killed operation's). */
  mayHaveKilled(slug: string): boolean {
    return this.killed.has(slug);
  }

  /** Every lock released (those taken ahead for rows that never started too). */
  close(): Promise<void> {
    return this.locks.close();
  }
}
