import { setTimeout as sleep } from 'node:timers/promises';
import type pg from 'pg';
import { LockedError } from '../errors.js';

/**
 * Who holds one of tenantctl's advisory locks in a database that tenants (or the serving role)
 * can connect to: target databases keep the per-target migration lock of a pool ('tnct') and the
 * grant lock ('tacl'). Advisory locks are not privileges, so any session there can take these
 * keys; tenantctl must never wait on such a session silently. `foreign` is a holder whose login
 * role is not this session's: not another tenantctl run, so waiting would only end when the
 * holder chooses.
 */
export interface LockHolder {
  pid: number;
  role: string | null;
  application: string | null;
  since: Date | null;
  foreign: boolean;
}

type Queryable = Pick<pg.ClientBase, 'query'>;

/**
 * The session holding advisory lock (classid, hashtext(key)) — (classid, 0) when key is null —
 * in the client's database, or null when it is free (or the holder cannot be read).
 *
 * @example
 *   const h = await advisoryLockHolder(c, MIGRATION_LOCK_CLASSID, 'app');
 *   if (h?.foreign) throw foreignHolderError('pool target us1/tenant_pool/app', h);
 */
export async function advisoryLockHolder(c: Queryable, classid: number, key: string | null): Promise<LockHolder | null> {
  try {
    const res = await c.query<{ pid: number; role: string | null; application: string | null; since: Date | null; foreign: boolean }>(
      `select l.pid, a.usename as role, a.application_name as application, a.backend_start as since,
              -- Unknown (the holder just ended, or its row is not visible): not foreign, look again.
              coalesce(a.usename <> session_user, false) as foreign
         from pg_locks l left join pg_stat_activity a on a.pid = l.pid
        where l.locktype = 'advisory' and l.granted and l.objsubid = 2
          and l.database = (select oid from pg_database where datname = current_database())
          and l.classid = $1::int::oid
          and l.objid = (case when $2::text is null then 0 else hashtext($2::text) end)::oid
        limit 1`,
      [classid, key],
    );
    return res.rows[0] ?? null;
  } catch {
    return null;
  }
}

/** ` (pid 123, role tenant_acme, psql, connected since …)`, or '' for no holder. */
export function describeHolder(h: LockHolder | null): string {
  if (!h) return '';
  const parts = [`pid ${h.pid}`];
  if (h.role) parts.push(`role ${h.role}`);
  if (h.application) parts.push(h.application);
  if (h.since) parts.push(`connected since ${h.since.toISOString()}`);
  return ` (${parts.join(', ')})`;
}

/** The error for a lock held by a session that is not tenantctl's: named, never waited on. */
export function foreignHolderError(what: string, h: LockHolder): LockedError {
  return new LockedError(
    `${what} is locked by role ${h.role ?? '(unknown)'} (pid ${h.pid}), not by tenantctl: a session of a tenant or application holds tenantctl's advisory lock`,
    `end that session (select pg_terminate_backend(${h.pid}) as a member of ${h.role ?? 'its role'}), then run the command again`,
  );
}

const POLL_MS = 50;

/**
 * A transaction-level advisory lock in a database tenants can reach: tried, and while busy the
 * holder is looked up. Another tenantctl session is waited for (up to waitMs, then LOCKED naming
 * it); any other holder fails at once with its role and pid. Call inside a transaction.
 *
 * @example
 *   await xactLockInReach(c, DATABASE_ACL_LOCK_CLASSID, 'tenant_schemas', 'the grants of database tenant_schemas');
 */
export async function xactLockInReach(c: Queryable, classid: number, key: string | null, what: string, waitMs = 30_000): Promise<void> {
  const until = Date.now() + waitMs;
  for (;;) {
    const r = await c.query<{ ok: boolean }>(
      `select pg_try_advisory_xact_lock($1::int, (case when $2::text is null then 0 else hashtext($2::text) end)) as ok`,
      [classid, key],
    );
    if (r.rows[0]?.ok) return;
    const h = await advisoryLockHolder(c, classid, key);
    if (h?.foreign) throw foreignHolderError(what, h);
    if (Date.now() >= until)
      throw new LockedError(`${what} is locked by another tenantctl session${describeHolder(h)}; waited ${waitMs}ms`);
    await sleep(POLL_MS + Math.random() * POLL_MS);
  }
}
