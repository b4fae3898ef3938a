/**
 * `usage` reads sizes and counts, which take ACCESS SHARE on every table they touch. A tenant may
 * hold ACCESS EXCLUSIVE on its own tables (its role owns them, or may UPDATE a pool table) for as
 * long as it likes: a measurement must neither wait for it (the session's 60 s bound, then the
 * whole database's tenants unmeasured) nor let one tenant hide the others, or itself, from
 * `--fail-on-quota` quietly. Each statement of a measurement waits at most USAGE_LOCK_WAIT_MS;
 * the tenants whose tables are held are then named as not measured, with who holds them.
 *
 * @module
 */
import type pg from 'pg';

type Q = Pick<pg.ClientBase, 'query'>;

/** How long one statement of a measurement waits for a table lock: a migration's moment, not a tenant's hour. */
export const USAGE_LOCK_WAIT_MS = 5_000;

/**
 * Run `fn` with the session's lock_timeout at `ms`, then back to the connection's own (the
 * statements stay in autocommit: a transaction around them would hold every table's lock until
 * its end, and block the tenants' own DDL for the whole measurement).
 */
export async function withUsageLockWait<T>(c: Q, fn: () => Promise<T>, ms = USAGE_LOCK_WAIT_MS): Promise<T> {
  await c.query(`set lock_timeout = ${Math.max(1, Math.floor(ms))}`);
  try {
    return await fn();
  } finally {
    // A connection that broke is closed by its pool; nothing to reset there.
    await c.query('reset lock_timeout').catch(() => undefined);
  }
}

/**
 * Per schema of `schemas`: the sessions holding, or queued for, ACCESS EXCLUSIVE on one of its
 * tables (either blocks a size or a count), as ` (pid 123 acme holds AccessExclusiveLock on
 * t_acme.orders, …)`. Read from pg_locks, which every role may read.
 */
export async function exclusiveLockHolders(c: Q, schemas: string[]): Promise<Map<string, string>> {
  const { rows } = await c.query<{
    schema: string;
    pid: number;
    usename: string | null;
    app: string | null;
    granted: boolean;
    rel: string;
  }>(
    `select n.nspname as schema, l.pid, a.usename, nullif(a.application_name, '') as app, l.granted,
            format('%I.%I', n.nspname, c.relname) as rel
       from pg_locks l
       join pg_class c on c.oid = l.relation
       join pg_namespace n on n.oid = c.relnamespace
       left join pg_stat_activity a on a.pid = l.pid
      where l.locktype = 'relation' and l.mode = 'AccessExclusiveLock' and l.pid <> pg_backend_pid()
        and l.database = (select oid from pg_database where datname = current_database())
        and n.nspname = any($1::text[])
      order by l.granted desc, l.pid`,
    [schemas],
  );
  const said = new Map<string, string[]>();
  for (const r of rows) {
    const who = `pid ${r.pid}${r.usename ? ` ${r.usename}` : ''} ${r.granted ? 'holds' : 'waits for'} AccessExclusiveLock on ${r.rel}${r.app ? ` (application ${r.app})` : ''}`;
    said.set(r.schema, [...(said.get(r.schema) ?? []), who]);
  }
  return new Map([...said].map(([s, w]) => [s, ` (${w.slice(0, 3).join('; ')}${w.length > 3 ? '; …' : ''})`]));
}

/** The reason tables held by another session were not measured, and what to do. */
export function heldReason(holders: string, ms = USAGE_LOCK_WAIT_MS): string {
  return `a session holds its tables in ACCESS EXCLUSIVE mode${holders || ' (a session tenantctl may not see)'}; usage waits at most ${ms / 1000} s for a table lock. End that transaction (pg_terminate_backend(pid) as its owner), then run usage again`;
}
