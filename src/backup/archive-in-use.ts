import { sql } from 'kysely';
import type { CatalogDb } from '../catalog/open.js';
import { LockedError } from '../errors.js';
import { ARCHIVE_LOCK_CLASSID } from '../operations/lock-ids.js';
import { LockSession } from '../operations/lock-session.js';

/** How long a restore waits for a `backup prune` that is deleting its archive right now (it then finds the archive gone). */
const IN_USE_WAIT_MS = 30_000;
const POLL_MS = 100;

/**
 * A restore reads its archive from the first file to the last, and `backup prune` (a cron job)
 * deleted one mid-restore: the restore failed with a bare ENOENT, and a `restore --replace`, whose
 * own safety backup made the archive it restores prunable, could lose the files it had not read
 * yet. So each restore holds a shared lock on its archive's id for its whole run (on the
 * process's catalog lock session, like the tenant locks: gone with a killed process), and prune
 * deletes an archive only under the exclusive lock, keeping (and saying so) one in use.
 */
export async function withArchiveInUse<T>(db: CatalogDb, id: string, fn: () => Promise<T>): Promise<T> {
  const h = await LockSession.of(db).acquire();
  try {
    const until = Date.now() + IN_USE_WAIT_MS;
    for (;;) {
      const { rows } = await h.use((s) =>
        sql<{ ok: boolean }>`select pg_try_advisory_lock_shared(${ARCHIVE_LOCK_CLASSID}::int, hashtext(${id})) as ok`.execute(s),
      );
      if (rows[0]?.ok) break;
      if (Date.now() >= until) throw new LockedError(`backup ${id} is being deleted by backup prune; waited ${IN_USE_WAIT_MS} ms`);
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
    try {
      return await fn();
    } finally {
      await h
        .use((s) => sql`select pg_advisory_unlock_shared(${ARCHIVE_LOCK_CLASSID}::int, hashtext(${id}))`.execute(s))
        .catch(() => undefined);
    }
  } finally {
    await h.release();
  }
}

/** Run `remove` under the archive's exclusive lock; false (nothing removed) while a restore reads it. */
export async function removeUnlessInUse(db: CatalogDb, id: string, remove: () => Promise<void>): Promise<boolean> {
  const h = await LockSession.of(db).acquire();
  try {
    const { rows } = await h.use((s) =>
      sql<{ ok: boolean }>`select pg_try_advisory_lock(${ARCHIVE_LOCK_CLASSID}::int, hashtext(${id})) as ok`.execute(s),
    );
    if (!rows[0]?.ok) return false;
    try {
      await remove();
      return true;
    } finally {
      await h.use((s) => sql`select pg_advisory_unlock(${ARCHIVE_LOCK_CLASSID}::int, hashtext(${id}))`.execute(s)).catch(() => undefined);
    }
  } finally {
    await h.release();
  }
}
