import type { ShardConnections } from './shard-connections.js';
import { tableLockHolders } from '../migrate/table-lock-holders.js';
import { isLockTimeout } from '../copy/load-lock-wait.js';
import { namesHolder } from '../errors.js';

/** A statement that waited its lock_timeout out (not a NOWAIT refusal, which shares the code). */
export function waitedOut(err: unknown): boolean {
  return isLockTimeout(err) && /lock timeout/.test(String((err as Error).message));
}

/**
 * Add to a lock timeout's message the sessions that likely held the lock: PostgreSQL's error says
 * neither whose lock nor on what, and once the statement gave up, pg_blocking_pids has nothing to
 * say. Found by a tenant holding ACCESS EXCLUSIVE on a pool table: `migrate up`, `backup create`
 * and `audit` each waited 60 s and said only "pg_locks and pg_stat_activity name it", where
 * suspend and delete named the pid. Read on a spare connection of the same database (none free:
 * the message stays as it was): sessions holding relation locks there (in a transaction open for a
 * second or more, where pg_stat_activity shows it: the holder held it the whole wait), strongest
 * lock and oldest transaction first. A message that names a holder already (the migration's own,
 * table-lock-holders.ts) is left alone.
 */
export async function nameLockHolders(conns: ShardConnections, database: string, err: Error): Promise<void> {
  if (namesHolder(err.message)) return;
  const c = await conns.tryAcquire(database).catch(() => undefined);
  if (!c) return;
  try {
    const holders = await tableLockHolders(c, null);
    if (holders) err.message = `${err.message} (held past the wait, likely by: ${holders.slice(2, -1)})`;
  } finally {
    conns.release(c);
  }
}
