import type { Fleet } from '../fleet/fleet.js';
import type { ShardClient } from '../fleet/shard-connections.js';
import { createClosedDatabase, openClosedDatabase } from '../catalog/closed.js';
import { TenantctlError } from '../errors.js';
import { ident, isAlreadyExists } from '../sql.js';
import { describeSessions, endDatabaseLockHolders, endSessions, sharedObjectLockHolders } from './sessions.js';
import { SESSION_LOCK_WAIT_MS } from '../fleet/shard-connections.js';
import { whileSweeping } from './sweep-holders.js';

/** The maintenance database every PostgreSQL cluster has; DDL on databases runs from there. */
import { ADMIN_DATABASE } from '../config/database-names.js';

export { ADMIN_DATABASE };

/**
 * The databases every cluster has and tenants do not need: closed to PUBLIC by `dev up`, checked
 * by `doctor` (a tenant role connected there can hold advisory locks and own large objects).
 */
export const MAINTENANCE_DATABASES = [ADMIN_DATABASE, 'template1'] as const;

/**
 * Create a database on a shard if it is missing. Safe when two processes race (the loser sees
 * duplicate_database and carries on). PUBLIC never may connect (createClosedDatabase), so only
 * roles granted CONNECT can.
 */
export async function ensureDatabase(fleet: Fleet, shard: string, database: string): Promise<boolean> {
  const known = `${shard}/${database}`;
  if (fleet.knownDatabases.has(known)) return false;
  const created = await fleet.withClient(shard, ADMIN_DATABASE, async (c) => {
    const exists = await c.query<{ open: boolean }>('select datallowconn as open from pg_database where datname = $1', [database]);
    if (exists.rows[0]) {
      // Not open yet: another create finishing it (wait a moment), or one killed between making
      // it and opening it: finish it (tenantctl's role owns it; idempotent either way).
      if (!exists.rows[0].open && !(await opened(c, database))) await openClosedDatabase(c, database);
      return false;
    }
    try {
      await createClosedDatabase(c, database);
    } catch (err) {
      // Someone else created it first (42P04, or 23505 when both got past the check at once):
      // wait until it opened it (its ACL is then final: a GRANT CONNECT meanwhile would race its
      // updates of the same pg_database row, "tuple concurrently updated"), or open it.
      if (!isAlreadyExists(err)) throw err;
      if (!(await opened(c, database))) await openClosedDatabase(c, database);
      return false;
    }
    return true;
  });
  fleet.knownDatabases.add(known);
  return created;
}

/** Drop a database if it exists, closing other sessions on it first (PostgreSQL 13+). */
export async function dropDatabase(fleet: Fleet, shard: string, database: string): Promise<void> {
  // Our own idle connections to it would block the drop.
  await fleet.connections(shard).closeIdle(database);
  fleet.knownDatabases.delete(`${shard}/${database}`);
  await fleet.withClient(shard, ADMIN_DATABASE, async (c) => {
    try {
      await dropWhenUnlocked(c, database);
    } catch (err) {
      // WITH (FORCE) refuses, for a role that is not a superuser, any process it may not signal,
      // and an autovacuum worker has no role: one analyzing a freshly loaded copy failed a move
      // rollback ("must be a member of the role whose process is being terminated"). A plain DROP
      // DATABASE stops autovacuum workers itself, so end the sessions we may end and drop without.
      if ((err as { code?: string }).code !== '42501') throw err;
      await dropAfterEndingSessions(c, database);
    }
  });
}

/**
 * WITH (FORCE) ends the sessions connected to it, not a lock on it taken from elsewhere
 * (`ALTER ROLE … IN DATABASE d SET …` in a transaction left open). Tenant roles' holders are ended
 * before each try, and each try waits a few seconds: a tenant whose next session takes the lock
 * again the moment the last one ended is ended again, rather than holding the drop for a minute.
 * Another holder (a concurrent tenantctl command, an administrator, the serving role's session)
 * is waited for, and named when it outlasts the tries.
 */
async function dropWhenUnlocked(c: ShardClient, database: string): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    await endDatabaseLockHolders(c, database);
    await c.query(`set lock_timeout = ${DROP_LOCK_WAIT_MS}`);
    try {
      // Holders ended again and again while the drop waits (sweep-holders.ts): one that
      // reconnects and takes the lock again then queues behind the drop.
      await whileSweeping(
        c,
        () => c.query(`drop database if exists ${ident(database)} with (force)`),
        (s) => endDatabaseLockHolders(s, database),
      );
      return;
    } catch (err) {
      if ((err as { code?: string }).code !== '55P03') throw err;
      if (attempt >= DROP_TRIES) {
        const holders = await sharedObjectLockHolders(c, 'pg_database', database);
        throw new TenantctlError(
          'LOCKED',
          `database ${database} could not be dropped: ${holders.length ? `${describeSessions(holders.map((h) => ({ ...h, database })))} hold${holders.length === 1 ? 's' : ''} a lock on it` : 'another session holds a lock on it'} (from another database: ALTER ROLE … IN DATABASE ${database}, or a GRANT on it, in a transaction left open)`,
          'end that session (pg_terminate_backend(pid) as its role or a superuser), then run the same command again: it finishes what was begun',
          undefined,
          { cause: err },
        );
      }
    } finally {
      await c.query(`set lock_timeout = ${SESSION_LOCK_WAIT_MS}`).catch(() => undefined);
    }
  }
}

const DROP_TRIES = 6;
const DROP_LOCK_WAIT_MS = 5_000;

/** How many times a plain drop is tried when a session came back between its end and the drop. */
const PLAIN_DROP_TRIES = 5;

async function dropAfterEndingSessions(c: ShardClient, database: string): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    const { stuck } = await endSessions(c, { database });
    if (stuck.length > 0) {
      throw new TenantctlError(
        'INTERNAL',
        `cannot drop database ${database}: sessions tenantctl's role may not end are connected to it: ${describeSessions(stuck)}`,
        'end them (pg_terminate_backend as their role or a superuser), then run the command again',
      );
    }
    try {
      await c.query(`drop database if exists ${ident(database)}`);
      return;
    } catch (err) {
      // 55006: "database … is being accessed by other users": a session connected meanwhile.
      if ((err as { code?: string }).code !== '55006' || attempt >= PLAIN_DROP_TRIES) throw err;
      await new Promise((r) => setTimeout(r, 200 * attempt));
    }
  }
}

/** Whether another create opens the database within a few seconds (it is between its statements). */
async function opened(c: ShardClient, database: string): Promise<boolean> {
  for (let i = 0; i < 40; i++) {
    const r = await c.query<{ open: boolean }>('select datallowconn as open from pg_database where datname = $1', [database]);
    if (r.rows[0]?.open) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}
