import type pg from 'pg';

/**
 * ` (pid 123 app_user holds AccessShareLock on app.tasks, …)`: the sessions holding locks on
 * the target schema's tables, for the message of a migration that gave up waiting for one.
 * Read from pg_locks, which every role may read; a transaction's start is shown only where
 * pg_stat_activity shows it to tenantctl's role. '' when none is found or the read fails.
 */
export async function tableLockHolders(client: Pick<pg.ClientBase, 'query'>, schema: string): Promise<string> {
  try {
    const res = await client.query<{ pid: number; usename: string | null; mode: string; rel: string; since: Date | null }>(
      `select l.pid, a.usename, l.mode, format('%I.%I', n.nspname, c.relname) as rel, a.xact_start as since
         from pg_locks l
         join pg_class c on c.oid = l.relation
         join pg_namespace n on n.oid = c.relnamespace
         left join pg_stat_activity a on a.pid = l.pid
        where l.locktype = 'relation' and l.granted and l.pid <> pg_backend_pid()
          and l.database = (select oid from pg_database where datname = current_database())
          and n.nspname = $1 and c.relkind in ('r', 'p', 'm', 'f')
        order by a.xact_start nulls last, l.pid
        limit 4`,
      [schema],
    );
    if (res.rows.length === 0) return '';
    const shown = res.rows
      .slice(0, 3)
      .map(
        (h) =>
          `pid ${h.pid}${h.usename ? ` ${h.usename}` : ''} holds ${h.mode} on ${h.rel}${h.since ? ` (transaction open since ${h.since.toISOString()})` : ''}`,
      );
    return ` (${shown.join('; ')}${res.rows.length > 3 ? '; …' : ''})`;
  } catch {
    return '';
  }
}
