import type { ShardClient, ShardConnections } from './shard-connections.js';

/** PostgreSQL's error for a statement that waited its lock_timeout out. */
export function isLockTimeout(err: unknown): boolean {
  return (err as { code?: string })?.code === '55P03' && /lock timeout/.test(String((err as Error).message));
}

/**
 * Add to a lock timeout's message the sessions that likely held the lock: PostgreSQL's error says
 * neither whose lock nor on what, and once the statement gave up, pg_blocking_pids has nothing to
 * say. Found by a tenant holding ACCESS EXCLUSIVE on a pool table: `migrate up`, `backup create`
 * and `audit` each waited 60 s and said only "pg_locks and pg_stat_activity name it", where
 * suspend and delete named the pid. Read on a spare connection of the same database (none free:
 * the message stays as it was): sessions holding relation locks there (in a transaction open for a
 * second or more, where pg_stat_activity shows it: the holder held it the whole wait), strongest
 * lock and oldest transaction first. A message that names a
 * holder already (the migration's own, table-lock-holders.ts) is left alone.
 */
export async function nameLockHolders(conns: ShardConnections, database: string, err: Error): Promise<void> {
  if (/\bpid \d+/.test(err.message)) return;
  let c: ShardClient | undefined;
  // A transaction's start is what pg_stat_activity shows the shard role of other roles' sessions
  // only with pg_read_all_stats: where it is hidden, every holder counts.
  try {
    c = await conns.tryAcquire(database);
    if (!c) return;
    const { rows } = await c.query<{
      pid: number;
      usename: string | null;
      app: string | null;
      mode: string;
      rel: string;
      since: Date | null;
    }>(
      `select l.pid, a.usename, nullif(a.application_name, '') as app, l.mode, format('%I.%I', n.nspname, r.relname) as rel, a.xact_start as since
         from pg_locks l
         join pg_class r on r.oid = l.relation
         join pg_namespace n on n.oid = r.relnamespace
         left join pg_stat_activity a on a.pid = l.pid
        where l.locktype = 'relation' and l.granted and l.pid <> pg_backend_pid()
          and l.database = (select oid from pg_database where datname = current_database())
          and n.nspname not in ('pg_catalog', 'information_schema') and (a.xact_start is null or a.xact_start <= now() - interval '1 second')
        order by array_position(array['AccessExclusiveLock', 'ExclusiveLock', 'ShareRowExclusiveLock', 'ShareLock',
                                      'ShareUpdateExclusiveLock', 'RowExclusiveLock', 'RowShareLock', 'AccessShareLock'], l.mode::text),
                 a.xact_start, l.pid
        limit 4`,
    );
    if (rows.length === 0) return;
    const shown = rows
      .slice(0, 3)
      .map(
        (h) =>
          `pid ${h.pid}${h.usename ? ` ${h.usename}` : ''} holds ${h.mode} on ${h.rel}${said([h.app && `application ${h.app}`, h.since && `transaction open since ${h.since.toISOString()}`])}`,
      );
    err.message = `${err.message} (held past the wait, likely by: ${shown.join('; ')}${rows.length > 3 ? '; …' : ''})`;
  } catch {
    // The message stays PostgreSQL's.
  } finally {
    if (c) conns.release(c);
  }
}

/** ` (a, b)` of what is known, or ''. */
function said(parts: (string | null | false)[]): string {
  const known = parts.filter(Boolean);
  return known.length ? ` (${known.join(', ')})` : '';
}
