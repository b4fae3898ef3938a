import type pg from 'pg';
import type { ShardClient } from '../fleet/shard-connections.js';
import { TENANT_ROLE_PREFIX } from './naming.js';
import { actForRole } from './roles.js';

type Queryable = Pick<pg.ClientBase, 'query'>;

/** A server session tenantctl asked to end, as pg_stat_activity shows it to the shard role. */
export interface OpenSession {
  pid: number;
  role: string;
  database: string;
  application: string;
  /** Why it is still there (the server's refusal, or "did not exit within N ms"). */
  why?: string;
}

/**
 * How long pg_terminate_backend waits for each session to exit. The wait ends as soon as the
 * backend is gone (an idle session: milliseconds), so the bound only matters for a slow exit (a
 * large rollback, a starved machine), and there a stuck session fails a database switch that the
 * operator must then start again: 3 s was seen to be too short once at load 15 (fault-kill,
 * restore.switched of a database tenant).
 */
export const END_SESSION_WAIT_MS = 10_000;

/** How many times a session that has not exited yet is signalled within END_SESSION_WAIT_MS. */
const END_SESSION_SIGNALS = 3;

/**
 * End every session on `database` (of `role` only, when given) but this one, and wait for each to
 * exit. The shard role may end sessions of roles it is a member of (its own, and a tenant role
 * after `actForRole`, src/placement/roles.ts); a superuser's or another role's session is
 * refused by the server and comes back in `stuck`, with the server's words. Run outside a
 * transaction: each refusal is an error of its own statement.
 *
 * @example
 *   const { ended, stuck } = await endSessions(c, { database: 't_acme', role: 'tenant_acme' });
 */
export async function endSessions(
  c: Queryable,
  where: { database: string; role?: string },
  waitMs = END_SESSION_WAIT_MS,
): Promise<{ ended: number; stuck: OpenSession[] }> {
  const found = await openSessions(c, where);
  const stuck: OpenSession[] = [];
  let ended = 0;
  // The wait is split over a few signals: a session that outlives one SIGTERM (seen once in the
  // fault-kill suite, a tenant application reconnecting every 40 ms while its tables are fenced)
  // is signalled again rather than failing the switch at once.
  const perSignal = Math.max(1, Math.ceil(waitMs / END_SESSION_SIGNALS));
  for (const s of found) {
    try {
      // null once the session is gone; else what it is doing, read once after each signal.
      let doing: string | null = '';
      for (let signal = 1; signal <= END_SESSION_SIGNALS && doing !== null; signal++) {
        const r = await c.query<{ ok: boolean }>('select pg_terminate_backend($1, $2) as ok', [s.pid, perSignal]);
        doing = r.rows[0].ok ? null : await stillDoing(c, s.pid);
      }
      if (doing === null) ended++;
      else stuck.push({ ...s, why: `did not exit within ${waitMs} ms${doing}` });
    } catch (err) {
      // 42501: "must be a superuser to terminate superuser process", "must be a member of the role …".
      stuck.push({ ...s, why: (err as Error).message });
    }
  }
  return { ended, stuck };
}

/**
 * What a session that outlived its end is doing, as pg_stat_activity shows it (for the message),
 * or null when it is gone (pg_terminate_backend waits for the process itself, which may linger a
 * moment after its session has left the view).
 */
async function stillDoing(c: Queryable, pid: number): Promise<string | null> {
  const { rows } = await c.query<{ state: string | null; wait: string | null; xact: boolean }>(
    `select state, wait_event_type || ':' || wait_event as wait, xact_start is not null as xact
       from pg_stat_activity where pid = $1`,
    [pid],
  );
  const r = rows[0];
  if (!r) return null;
  return ` (state ${r.state ?? 'unknown'}${r.wait ? `, waiting on ${r.wait}` : ''}${r.xact ? ', in a transaction' : ''})`;
}

/**
 * Client sessions on `database` (of `role`, when given) other than this one. Autovacuum workers
 * (no role) are left out: no role may end them but a superuser, and a rename or drop of the
 * database ends them itself. The shard role sees other roles' sessions without their
 * backend_type (null), but with their pid, role and application.
 */
export async function openSessions(c: Queryable, where: { database: string; role?: string }): Promise<OpenSession[]> {
  const { rows } = await c.query<{ pid: number; role: string | null; application: string | null }>(
    `select pid, usename as role, application_name as application from pg_stat_activity
      where datname = $1 and pid <> pg_backend_pid() and usename is not null and coalesce(backend_type, 'client backend') = 'client backend'
        and ($2::text is null or usename = $2)
      order by pid`,
    [where.database, where.role ?? null],
  );
  return rows.map((r) => ({ pid: r.pid, role: r.role ?? '?', database: where.database, application: r.application ?? '' }));
}

/** `pid 123 (postgres, psql): must be a superuser …`, for errors naming what would not end. */
export function describeSessions(s: OpenSession[]): string {
  return s.map((x) => `pid ${x.pid} (role ${x.role}${x.application ? `, ${x.application}` : ''})${x.why ? `: ${x.why}` : ''}`).join('; ');
}

/**
 * End the sessions, anywhere on the cluster, of tenant roles that hold a lock on `database` itself
 * without being connected to it: `ALTER ROLE … IN DATABASE d SET …` takes one, any role may run it
 * for itself on any database, and in a transaction left open a neighbour tenant held a database
 * tenant's DROP or RENAME until lock_timeout, for as long as it liked. Only tenant roles are ended
 * (tenantctl makes itself a member of one first, as for its own sessions); any other holder (a
 * concurrent tenantctl command, an administrator) is left to the caller's lock wait.
 * Run outside a transaction.
 */
export async function endDatabaseLockHolders(c: ShardClient, database: string): Promise<void> {
  await endTenantHolders(c, await sharedObjectLockHolders(c, 'pg_database', database));
}

/**
 * The same for a lock on a role: `ALTER DEFAULT PRIVILEGES … GRANT … TO tenant_<neighbour>` (any
 * role may run it for itself) takes a lock on the grantee, and left open it held that tenant's
 * DROP ROLE until lock_timeout, leaving the tenant `deleting`.
 */
export async function endRoleLockHolders(c: ShardClient, role: string): Promise<void> {
  await endTenantHolders(c, await sharedObjectLockHolders(c, 'pg_authid', role));
}

/**
 * Sessions (other than this one) holding a lock on a database or a role, with their roles. A
 * session connected to a database holds a lock on it too (autovacuum workers included): those are
 * the callers' to end (WITH (FORCE), endSessions), not these.
 */
export async function sharedObjectLockHolders(
  c: Queryable,
  catalog: 'pg_database' | 'pg_authid',
  name: string,
): Promise<{ pid: number; role: string; application: string }[]> {
  const target =
    catalog === 'pg_database'
      ? `l.classid = 'pg_database'::regclass and l.objid = (select oid from pg_database where datname = $1) and a.datname is distinct from $1`
      : `l.classid = 'pg_authid'::regclass and l.objid = (select oid from pg_roles where rolname = $1)`;
  const { rows } = await c.query<{ pid: number; role: string | null; application: string | null }>(
    `select distinct l.pid, a.usename as role, a.application_name as application
       from pg_locks l join pg_stat_activity a on a.pid = l.pid
      where l.locktype = 'object' and l.database = 0 and l.granted and l.pid <> pg_backend_pid() and ${target}
      order by l.pid`,
    [name],
  );
  return rows.map((r) => ({ pid: r.pid, role: r.role ?? '?', application: r.application ?? '' }));
}

/**
 * End the holders that are tenant roles (tenantctl makes itself a member of one first, as for its
 * own sessions); any other holder (a concurrent tenantctl command, an administrator, the serving
 * role, of which tenantctl never makes itself a member: its policies would then apply to
 * tenantctl) is left to the caller's lock wait, which names it.
 */
async function endTenantHolders(c: ShardClient, holders: { pid: number; role: string }[]): Promise<void> {
  for (const r of holders) {
    if (!r.role.startsWith(TENANT_ROLE_PREFIX)) continue;
    // One that cannot be ended is left to the caller's lock wait, which names the failure.
    if (await actForRole(c, r.role)) {
      await c.query('select pg_terminate_backend($1, $2)', [r.pid, END_SESSION_WAIT_MS]).catch(() => undefined);
    }
  }
}
