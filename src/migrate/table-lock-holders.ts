import type pg from 'pg';

/** Lock modes, strongest first: the holder that blocks most is named first. */
const STRONGEST_FIRST = [
  'AccessExclusiveLock',
  'ExclusiveLock',
  'ShareRowExclusiveLock',
  'ShareLock',
  'ShareUpdateExclusiveLock',
  'RowExclusiveLock',
  'RowShareLock',
  'AccessShareLock',
];

/**
 * ` (pid 123 app_user holds AccessShareLock on app.tasks, …)`: the sessions holding locks on
 * the target schema's tables, for the message of a command that gave up waiting for one (a
 * migration; a load into a pool, which asks only for the `modes` its inserts wait for). Read from
 * pg_locks, which every role may read; a transaction's start and the session's application_name
 * (a pool tenant's slug, from the URL `resolve` prints) are shown only where pg_stat_activity shows
 * them to tenantctl's role. '' when none is found or the read fails.
 *
 * With `schema` null: every user schema of the database, strongest lock first, and only sessions
 * whose transaction is a second old or more where that is shown (the holder of a lock a statement
 * waited out held it the whole wait): fleet/lock-timeout-holders.ts, for a wait nobody bounded
 * with its own message.
 */
export async function tableLockHolders(client: Pick<pg.ClientBase, 'query'>, schema: string | null, modes?: string[]): Promise<string> {
  try {
    const res = await client.query<{
      pid: number;
      usename: string | null;
      app: string | null;
      mode: string;
      rel: string;
      since: Date | null;
    }>(
      `select l.pid, a.usename, nullif(a.application_name, '') as app, l.mode, format('%I.%I', n.nspname, c.relname) as rel, a.xact_start as since
         from pg_locks l
         join pg_class c on c.oid = l.relation
         join pg_namespace n on n.oid = c.relnamespace
         left join pg_stat_activity a on a.pid = l.pid
        where l.locktype = 'relation' and l.granted and l.pid <> pg_backend_pid()
          and l.database = (select oid from pg_database where datname = current_database())
          and c.relkind in ('r', 'p', 'm', 'f')
          and ($2::text[] is null or l.mode = any($2::text[]))
          and (case when $1::text is null
                    then n.nspname not in ('pg_catalog', 'information_schema')
                         and (a.xact_start is null or a.xact_start <= now() - interval '1 second')
                    else n.nspname = $1 end)
        order by case when $1::text is null then array_position($3::text[], l.mode::text) end, a.xact_start nulls last, l.pid
        limit 4`,
      [schema, modes ?? null, STRONGEST_FIRST],
    );
    if (res.rows.length === 0) return '';
    const shown = res.rows
      .slice(0, 3)
      .map((h) => `pid ${h.pid}${h.usename ? ` ${h.usename}` : ''} holds ${h.mode} on ${h.rel}${sessionOf(h)}`);
    return ` (${shown.join('; ')}${res.rows.length > 3 ? '; …' : ''})`;
  } catch {
    return '';
  }
}

/** ` (application acme, transaction open since …)`, or '' when pg_stat_activity shows neither. */
function sessionOf(h: { app: string | null; since: Date | null }): string {
  const said = [h.app && `application ${h.app}`, h.since && `transaction open since ${h.since.toISOString()}`].filter(Boolean);
  return said.length ? ` (${said.join(', ')})` : '';
}
