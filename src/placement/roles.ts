import type { ShardClient } from '../fleet/shard-connections.js';
import { ident, isAlreadyExists } from '../sql.js';
import { TenantctlError } from '../errors.js';
import { DATABASE_ACL_LOCK_CLASSID } from '../operations/lock-ids.js';
import { whileSweeping } from './sweep-holders.js';
import { xactLockInReach } from '../operations/lock-holder.js';

/**
 * Tenant roles: one per schema or database tenant, able to use its own placement and nothing of
 * any other tenant. Created LOGIN without a password: `tenant credentials` sets one
 * (credentials.ts), or operators map the role in pg_hba/pgbouncer.
 */
export async function ensureTenantRole(c: ShardClient, role: string): Promise<void> {
  const exists = await c.query('select 1 from pg_roles where rolname = $1', [role]);
  if (exists.rowCount) return;
  try {
    await c.query(`create role ${ident(role)} login nosuperuser nocreatedb nocreaterole noinherit nobypassrls`);
  } catch (err) {
    if (!isAlreadyExists(err)) throw err;
  }
}

/**
 * Give tenantctl's role the privileges of a tenant role (a superuser has them): needed to DROP
 * OWNED BY it (role-drop.ts; PostgreSQL 15 lets a CREATEROLE role grant itself any non-superuser
 * role, 16 gives it ADMIN on the roles it created), and to end its sessions when its database is dropped WITH (FORCE) ("must be a
 * member of the role whose process is being terminated"). Returns false when the role does not
 * exist. The membership goes when the role is dropped.
 */
export async function actForRole(c: ShardClient, role: string): Promise<boolean> {
  const { rows } = await c.query<{ member: boolean; superuser: boolean }>(
    `select pg_has_role(current_user, r.oid, 'usage') as member,
            (select rolsuper from pg_roles where rolname = current_user) as superuser
       from pg_roles r where r.rolname = $1`,
    [role],
  );
  if (rows.length === 0) return false;
  if (!rows[0].superuser && !rows[0].member) await c.query(`grant ${ident(role)} to current_user`);
  return true;
}

/** The role may use the schema's tables and sequences, including ones migrations add later. */
export async function grantSchemaToRole(c: ShardClient, schema: string, role: string, admin: string): Promise<void> {
  const s = ident(schema);
  const r = ident(role);
  await c.query(`grant usage on schema ${s} to ${r}`);
  await c.query(`grant select, insert, update, delete on all tables in schema ${s} to ${r}`);
  await c.query(`grant usage, select on all sequences in schema ${s} to ${r}`);
  await c.query(`alter default privileges for role ${ident(admin)} in schema ${s} grant select, insert, update, delete on tables to ${r}`);
  await c.query(`alter default privileges for role ${ident(admin)} in schema ${s} grant usage, select on sequences to ${r}`);
}

/**
 * GRANT CONNECT on a database to a role. A GRANT rewrites the database's pg_database row, and two
 * at once fail with "tuple concurrently updated" (bulk onboarding does exactly that), so grants on
 * one database are serialised with a transaction-scoped advisory lock. Tenants connect to that
 * database and can take the same key: such a holder fails the grant at once, naming its role and
 * pid (xactLockInReach). Call inside a transaction.
 */
export async function grantConnect(c: ShardClient, database: string, role: string): Promise<void> {
  await xactLockInReach(c, DATABASE_ACL_LOCK_CLASSID, database, `the grants of database ${database}`);
  const has = await c.query<{ ok: boolean }>(`select has_database_privilege($1, $2, 'CONNECT') as ok`, [role, database]);
  if (!has.rows[0].ok) await c.query(`grant connect on database ${ident(database)} to ${ident(role)}`);
}

/**
 * The role's search_path in the placement's database, so the application's unqualified queries
 * find the tenant's tables whatever connects (a pooler that drops libpq's `options` too). Per
 * database (`IN DATABASE`): a role is cluster-wide, and during a schema ↔ database move on one
 * cluster it uses two placements with different schemas. The setting follows the database's
 * oid, so a renamed database keeps it; a dropped one takes it along. Transactional; idempotent.
 */
export async function setRoleSearchPath(c: ShardClient, role: string, database: string, schema: string): Promise<void> {
  await c.query(`alter role ${ident(role)} in database ${ident(database)} set search_path = ${ident(schema)}`);
}

/**
 * End every session of a role, cluster-wide (suspend: LOGIN off stops new ones, this ends the
 * open ones). pg_terminate_backend needs the role's privileges ("must be a member of the role
 * whose process is being terminated"), so a CREATEROLE shard role makes itself a member first;
 * each call waits up to 5 s for the backend to be gone. Returns how many sessions were ended.
 * Run on the maintenance database. With `database`, only the sessions connected to it.
 */
export async function endRoleSessions(c: ShardClient, role: string, database?: string): Promise<number> {
  if (!(await actForRole(c, role))) return 0;
  let ended = 0;
  // A session that authenticated just before LOGIN went off shows up a moment later: look again.
  for (let round = 0; round < 3; round++) {
    const { rows } = await c.query<{ pid: number }>(
      `select pid from pg_stat_activity where usename = $1 and pid <> pg_backend_pid() and ($2::text is null or datname = $2)`,
      [role, database ?? null],
    );
    if (rows.length === 0 && round > 0) break;
    for (const r of rows) if (await endOne(c, role, r.pid)) ended++;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return ended;
}

/**
 * End one session of `role`. Refused as "must be a member of the role" when the role was dropped
 * and made again under the same name since actForRole (a new role, without our membership, seen
 * once in CI): the membership is taken again and the session ended once more; a second refusal is
 * an error that names the session.
 */
async function endOne(c: ShardClient, role: string, pid: number): Promise<boolean> {
  const end = async () => (await c.query<{ ok: boolean }>('select pg_terminate_backend($1, 5000) as ok', [pid])).rows[0]?.ok ?? false;
  try {
    return await end();
  } catch (err) {
    if ((err as { code?: string }).code !== '42501') throw err;
    if (!(await actForRole(c, role))) return false;
    try {
      return await end();
    } catch (again) {
      if ((again as { code?: string }).code !== '42501') throw again;
      throw new TenantctlError(
        'INTERNAL',
        `could not end session ${pid} of role ${role}: ${(again as Error).message}`,
        `end it as a superuser (select pg_terminate_backend(${pid})), then run the command again`,
      );
    }
  }
}

/** How long LOGIN off waits for the role's pg_authid row before its sessions are ended again. */
const LOGIN_LOCK_WAIT_MS = 5_000;
/** How many times LOGIN off is tried, the role's sessions ended before each. */
const LOGIN_OFF_TRIES = 3;

/**
 * LOGIN off for good (suspend, password rotation, delete), even against the role itself: any role
 * may ALTER ROLE itself (its password) in a transaction it leaves open, which holds its pg_authid
 * row, and LOGIN off queued behind it until lock_timeout while the tenant stayed in (a hostile
 * tenant made itself impossible to suspend, rotate or delete). Its sessions, which every caller
 * ends next anyway, are ended first; a lock wait still met (a new session took the row meanwhile)
 * is given up after LOGIN_LOCK_WAIT_MS, the sessions ended again and LOGIN off tried again.
 * Returns how many sessions were ended. Run on the maintenance database, outside a transaction.
 */
export async function cutRoleLogin(c: ShardClient, role: string): Promise<number> {
  let ended = 0;
  for (let attempt = 1; ; attempt++) {
    ended += await endRoleSessions(c, role);
    try {
      // Its sessions ended again and again while the statement waits: a tenant reconnecting in a
      // loop to hold its own role locked then waits behind it (sweep-holders.ts).
      await whileSweeping(
        c,
        async () => {
          await c.query('begin');
          await c.query(`set local lock_timeout = ${LOGIN_LOCK_WAIT_MS}`);
          await setRoleLogin(c, role, false);
          await c.query('commit');
        },
        (s) => endRoleSessions(s, role),
      );
      return ended;
    } catch (err) {
      await c.query('rollback').catch(() => undefined);
      if ((err as { code?: string }).code !== '55P03') throw err;
      if (attempt >= LOGIN_OFF_TRIES) {
        throw new TenantctlError(
          'LOCKED',
          `could not turn LOGIN off for role ${role}: a transaction holds the role locked again each time its sessions are ended (${LOGIN_OFF_TRIES} tries)`,
          `find it (select pid, usename, xact_start from pg_stat_activity where xact_start is not null), end it, then run the command again`,
          1,
        );
      }
    }
  }
}

/**
 * Turn a tenant role's LOGIN off (the fence of a move) or on again. Idempotent. Run on the
 * maintenance database: roles are cluster-wide. Suspend, rotation and delete use cutRoleLogin.
 */
export async function setRoleLogin(c: ShardClient, role: string, login: boolean): Promise<void> {
  await c.query(`alter role ${ident(role)} ${login ? 'login' : 'nologin'}`);
}
