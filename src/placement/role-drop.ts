import { redactText } from '../config/redact.js';
import { errorMessage, EXIT, TenantctlError } from '../errors.js';
import { inTransaction, type Fleet } from '../fleet/fleet.js';
import type { ShardClient } from '../fleet/shard-connections.js';
import { ident } from '../sql.js';
import { ADMIN_DATABASE } from './databases.js';
import { TENANT_ROLE_PREFIX } from './naming.js';
import { actForRole, cutRoleLogin, endRoleSessions } from './roles.js';
import { endRoleLockHolders, sharedObjectLockHolders } from './sessions.js';
import { whileSweeping } from './sweep-holders.js';
import { DATABASE_ACL_LOCK_CLASSID } from '../operations/lock-ids.js';
import { xactLockInReach } from '../operations/lock-holder.js';

/**
 * Dropping a tenant role for good, wherever it reached. A tenant role can connect to more than
 * its placement (the maintenance database, and any database still open to PUBLIC), and there it
 * can own things: a large object (`lo_from_bytea`), a temporary table, privileges granted by
 * someone else. DROP ROLE refuses while any of that exists, and DROP OWNED only cleans the
 * database it runs in, so a delete that ran it in one database left the tenant `deleting` with a
 * role that could still log in.
 *
 * Order: LOGIN off and the role's sessions ended first (its reach closed: nothing new appears
 * meanwhile, and a failure leaves no role that can log in), then DROP OWNED in every database
 * where pg_shdepend says it owns or holds something, then DROP ROLE. What still blocks is named
 * (object and database). Every step is idempotent: running the delete again finishes it.
 */

/**
 * Make tenantctl's role able to act for `role`, take its LOGIN away and end its sessions.
 * Returns false when the role does not exist.
 */
export async function closeRoleReach(fleet: Fleet, shard: string, role: string): Promise<boolean> {
  return fleet.withClient(shard, ADMIN_DATABASE, async (c) => {
    if (!(await actForRole(c, role))) return false;
    await cutRoleLogin(c, role);
    // Waits for each session to end: its temporary objects go with it (roles.ts, shared with suspend).
    await endRoleSessions(c, role);
    return true;
  });
}

/**
 * Drop a tenant role and everything it owns or was granted, in every database of the shard.
 * Throws DELETE_INCOMPLETE naming each object (and its database) that still blocks the drop.
 *
 * @example
 *   await dropRoleEverywhere(fleet, 'us1', 'tenant_acme');
 */
export async function dropRoleEverywhere(fleet: Fleet, shard: string, role: string): Promise<void> {
  if (!(await closeRoleReach(fleet, shard, role))) return;
  const problems: string[] = [];
  await revokeDatabaseGrants(fleet, shard, role, problems);
  for (const database of await fleet.withClient(shard, ADMIN_DATABASE, (c) => databasesHolding(c, role))) {
    if (database === ADMIN_DATABASE) continue; // done below, with the drop
    try {
      await fleet.withClient(shard, database, async (c) => {
        await revokeLargeObjectGrantsOfOthers(c, role);
        await c.query(`drop owned by ${ident(role)}`);
      });
    } catch (err) {
      problems.push(`database ${database}: ${redactText(errorMessage(err))}`);
    }
  }
  // A neighbour's lock on the role (ALTER DEFAULT PRIVILEGES … TO it, left open) would hold the
  // drop until lock_timeout: a tenant role's such session is ended first (sessions.ts).
  await fleet.withClient(shard, ADMIN_DATABASE, (c) => endRoleLockHolders(c, role));
  try {
    await concurrentCatalogRetry(() =>
      fleet.withTransaction(shard, ADMIN_DATABASE, (c) =>
        // A neighbour reconnecting to lock the role again waits behind the drop (sweep-holders.ts).
        whileSweeping(
          c,
          async () => {
            // Here too: privileges on shared objects (databases) are revoked from any database.
            await c.query(`drop owned by ${ident(role)}`);
            await c.query(`drop role if exists ${ident(role)}`);
          },
          (s) => endRoleLockHolders(s, role),
        ),
      ),
    );
  } catch (err) {
    const holders = await fleet.withClient(shard, ADMIN_DATABASE, (c) => sharedObjectLockHolders(c, 'pg_authid', role)).catch(() => []);
    const left = [
      ...(await whatStillBlocks(fleet, shard, role)),
      ...holders.map(
        (h) =>
          `a lock on the role held by pid ${h.pid} (role ${h.role}${h.application ? `, ${h.application}` : ''}: a GRANT or ALTER DEFAULT PRIVILEGES … TO ${role} in a transaction left open; end it with pg_terminate_backend(${h.pid}))`,
      ),
    ];
    throw new TenantctlError(
      'DELETE_INCOMPLETE',
      `role ${role} on shard ${shard} cannot be dropped: ${left.length ? `${left.join('; ')} (PostgreSQL: ${redactText(errorMessage(err))})` : redactText(errorMessage(err))}${
        problems.length ? ` (${problems.join('; ')})` : ''
      }`,
      `its LOGIN is off and its sessions were ended; drop those objects (or REASSIGN OWNED BY ${role} TO another role) as their owner or a superuser in each database named, then run tenant delete again`,
      EXIT.failed,
      { cause: err },
    );
  }
}

/**
 * The role's privileges on databases (its CONNECT), revoked in each database under the lock
 * every GRANT on that database takes there (roles.ts grantConnect; advisory locks are per
 * database, so only a lock taken in that database serialises with it). DROP OWNED rewrites those
 * pg_database rows too, unserialised: with a bulk create or other deletes on the same database,
 * 24 deletes at once lost the race three times running ("tuple concurrently updated") and ended
 * DELETE_INCOMPLETE naming "privileges granted to it". After this, DROP OWNED has none left to
 * rewrite. A database it cannot do this in is left to DROP OWNED, as before.
 */
async function revokeDatabaseGrants(fleet: Fleet, shard: string, role: string, problems: string[]): Promise<void> {
  const { rows } = await fleet.withClient(shard, ADMIN_DATABASE, (c) =>
    c.query<{ datname: string }>(
      `select distinct d.datname from pg_database d, aclexplode(d.datacl) a
        where a.grantee = (select oid from pg_roles where rolname = $1) order by 1`,
      [role],
    ),
  );
  for (const { datname: database } of rows) {
    if (database === ADMIN_DATABASE) continue;
    try {
      await fleet.withTransaction(shard, database, async (c) => {
        await xactLockInReach(c, DATABASE_ACL_LOCK_CLASSID, database, `the grants of database ${database}`);
        await c.query(`revoke all on database ${ident(database)} from ${ident(role)}`);
      });
    } catch (err) {
      problems.push(`database ${database}: ${redactText(errorMessage(err))}`);
    }
  }
}

/** Databases where the role owns objects or holds privileges (pg_shdepend), the maintenance database first. */
async function databasesHolding(c: ShardClient, role: string): Promise<string[]> {
  const { rows } = await c.query<{ datname: string }>(
    `select distinct d.datname from pg_shdepend s join pg_database d on d.oid = s.dbid
      where s.refclassid = 'pg_authid'::regclass and s.refobjid = (select oid from pg_roles where rolname = $1)
      order by 1`,
    [role],
  );
  return rows.map((r) => r.datname);
}

/**
 * Privileges on large objects another role granted to this one: any role that can log in may
 * create a large object and `grant select on large object … to tenant_<neighbour>`, and DROP
 * OWNED revokes only what tenantctl's own role granted, so the neighbour's role could never be
 * dropped (its delete and its move's completion stuck for good). Revoked here as their grantor,
 * tenantctl acting for it (a tenant role or the serving role; a superuser's grant is left, and
 * named by the error).
 */
async function revokeLargeObjectGrantsOfOthers(c: ShardClient, role: string): Promise<void> {
  const { rows } = await c.query<{ lo: string; grantor: string }>(
    `select distinct m.oid::text as lo, g.rolname as grantor
       from pg_largeobject_metadata m, aclexplode(m.lomacl) a join pg_roles g on g.oid = a.grantor
      where a.grantee = (select oid from pg_roles where rolname = $1) and g.rolname <> current_user and not g.rolsuper
      order by 1, 2`,
    [role],
  );
  for (const r of rows) {
    if (!(await actForRole(c, r.grantor))) continue;
    const tenant = r.grantor.startsWith(TENANT_ROLE_PREFIX);
    for (let attempt = 1; ; attempt++) {
      try {
        await inTransaction(c, async () => {
          // A tenant grantor is given a short wait (then its open transactions end); others the connection's lock_timeout.
          if (tenant) await c.query(`set local lock_timeout = ${GRANT_LOCK_WAIT_MS}`);
          await c.query(`set local role ${ident(r.grantor)}`);
          await c.query(`revoke all on large object ${Number(r.lo)} from ${ident(role)}`);
        });
        break;
      } catch (err) {
        // The grantor's own transaction holds the object (another GRANT on it, never committed):
        // a tenant kept its neighbour's delete waiting for as long as it liked. A tenant role's
        // sessions in a transaction are ended and the revoke tried again; anyone else is waited for.
        if ((err as { code?: string }).code !== '55P03' || attempt >= 3 || !tenant) throw err;
        await endSessionsInTransaction(c, r.grantor);
      }
    }
  }
}

/** How long a revoke waits for a large object before the grantor's open transactions are ended. */
const GRANT_LOCK_WAIT_MS = 2_000;

/** End every session of `role` that is in a transaction (tenantctl acts for it: actForRole first). */
async function endSessionsInTransaction(c: ShardClient, role: string): Promise<void> {
  await c.query(
    `select pg_terminate_backend(pid, 5000) from pg_stat_activity
      where usename = $1 and xact_start is not null and pid <> pg_backend_pid()`,
    [role],
  );
}

/** `large object 16390 in database tenantctl_catalog (owner)` for what still depends on the role. */
async function whatStillBlocks(fleet: Fleet, shard: string, role: string): Promise<string[]> {
  const out: string[] = [];
  const databases = await fleet.withClient(shard, ADMIN_DATABASE, (c) => databasesHolding(c, role)).catch(() => [] as string[]);
  for (const database of [...databases, null]) {
    try {
      const rows = await fleet.withClient(
        shard,
        database ?? ADMIN_DATABASE,
        async (c) =>
          (
            await c.query<{ what: string; kind: string }>(
              `select pg_describe_object(s.classid, s.objid, s.objsubid) as what,
                    case s.deptype when 'o' then 'its owner'
                         when 'a' then 'privileges granted to it' || coalesce(' by ' || (
                           select string_agg(distinct g.rolname, ', ') from pg_largeobject_metadata m, aclexplode(m.lomacl) x
                             join pg_roles g on g.oid = x.grantor
                            where s.classid = 'pg_largeobject'::regclass and m.oid = s.objid and x.grantee = s.refobjid), '')
                         when 'r' then 'a policy names it'
                         else 'depends on it' end as kind
               from pg_shdepend s
              where s.refclassid = 'pg_authid'::regclass and s.refobjid = (select oid from pg_roles where rolname = $1)
                and s.dbid = case when $2::bool then 0 else (select oid from pg_database where datname = current_database()) end
              order by 1 limit 10`,
              [role, database === null],
            )
          ).rows,
      );
      for (const r of rows) out.push(`${r.what}${database ? ` in database ${database}` : ''} (${r.kind})`);
    } catch (err) {
      if (database) out.push(`objects in database ${database}, which tenantctl cannot read (${redactText(errorMessage(err))})`);
    }
  }
  return out;
}

/**
 * Run `f` again (up to 3 times, 100–300 ms apart) when PostgreSQL reports "tuple concurrently
 * updated": revoking the role's CONNECT rewrites the database's pg_database row, which another
 * tenant's GRANT CONNECT on the same database may be rewriting at that moment (a create or a move
 * onto the shard); the loser of that race gets this error, not a wait, and the drop is safe to
 * run again.
 */
async function concurrentCatalogRetry<T>(f: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await f();
    } catch (err) {
      if (attempt >= 3 || !/tuple concurrently updated/.test(errorMessage(err))) throw err;
      await new Promise((r) => setTimeout(r, 100 * attempt));
    }
  }
}
