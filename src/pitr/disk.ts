import { statfs } from 'node:fs/promises';
import type { Fleet } from '../fleet/fleet.js';
import { ADMIN_DATABASE } from '../placement/databases.js';
import { UsageError } from '../errors.js';

/** WAL segments recovery keeps in pg_wal while it replays (a few 16 MB segments), plus slack. */
const WAL_ROOM = 64 * 1024 * 1024;

/**
 * The disk a scratch restore of `databases` needs: what they take on the shard now (pgBackRest
 * restores the others as empty sparse files with --db-include), the system databases, room for
 * replay, and a tenth more for growth since the backup. Null when the shard cannot be asked (the
 * caller falls back on the base backup's size: needFromBackup).
 */
export async function scratchNeed(fleet: Fleet, shard: string, databases: string[]): Promise<number | null> {
  try {
    const r = await fleet.withClient(shard, ADMIN_DATABASE, (c) =>
      c.query<{ n: string }>(
        `select coalesce(sum(pg_database_size(datname)), 0)::text as n from pg_database
          where datname = any($1) or datname in ('postgres', 'template0', 'template1')`,
        [databases],
      ),
    );
    return Math.ceil(Number(r.rows[0].n) * 1.1) + WAL_ROOM;
  } catch {
    return null;
  }
}

/** The disk a scratch restore needs by the base backup's size alone. */
export function needFromBackup(backupSize: number): number {
  return backupSize + WAL_ROOM;
}

/** Bytes free for an unprivileged writer in the folder's file system. */
export async function freeBytes(dir: string): Promise<number> {
  const s = await statfs(dir);
  return s.bavail * s.bsize;
}

/** Refuse before anything starts when the scratch restore would not fit (exit 2, with the numbers). */
export function assertRoom(need: number, free: number, dir: string): void {
  if (need > free) {
    throw new UsageError(
      'PITR_DISK',
      `the scratch restore needs about ${human(need)} and ${dir} has ${human(free)} free`,
      `free ${human(need - free)} in ${dir}, or point regions.<region>.pitr.scratch at a larger disk`,
    );
  }
}

export function human(bytes: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let v = bytes;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}
