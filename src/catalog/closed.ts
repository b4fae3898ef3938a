import { type Kysely, sql } from 'kysely';
import type pg from 'pg';
import { ident } from '../sql.js';
import type { CatalogDatabase } from './tables.js';

/**
 * The catalog database is tenantctl's alone: CONNECT and TEMP are revoked from PUBLIC (a new
 * database grants both to everyone), so tenant roles and the serving role cannot connect to it,
 * read its activity or take the advisory locks tenantctl keeps there (fleet run, run and tenant
 * locks: src/operations/lock-ids.ts). The owner — tenantctl's role, which created it — keeps
 * both through its owner's rights.
 */

/** SQL: PUBLIC may still connect to (or make temporary tables in) the current database. */
export const PUBLIC_REACH_SQL = `(has_database_privilege('public', current_database(), 'CONNECT')
  or has_database_privilege('public', current_database(), 'TEMPORARY'))`;

/** The statements that take the database away from PUBLIC (run by its owner or a superuser). */
export function closeToPublicSql(database: string): string {
  return `revoke connect, temporary on database ${ident(database)} from public`;
}

/**
 * Close an existing catalog database to PUBLIC, as its owner. Returns whether it is closed now:
 * a role that is not the owner gets only a warning from REVOKE, and the catalog stays open
 * (`tenantctl doctor` then says so, with the statement to run as the owner).
 *
 * @example
 *   if (!(await closeCatalogToPublic(db))) console.warn('catalog still open to PUBLIC');
 */
export async function closeCatalogToPublic(db: Kysely<CatalogDatabase>): Promise<boolean> {
  const { rows: names } = await sql<{ d: string }>`select current_database() as d`.execute(db);
  await sql.raw(closeToPublicSql(names[0].d)).execute(db);
  const { rows } = await sql<{ open: boolean }>`select ${sql.raw(PUBLIC_REACH_SQL)} as open`.execute(db);
  return !rows[0].open;
}

/**
 * Create a database that PUBLIC never may connect to: made with connections off, closed to
 * PUBLIC, then opened. A new database grants CONNECT to PUBLIC, so revoking it after a plain
 * CREATE DATABASE left a window in which any role with a login (another tenant's) could connect
 * and keep its session. Run on a client of the maintenance database, as the role that will own it.
 */
export async function createClosedDatabase(c: Pick<pg.ClientBase, 'query'>, database: string): Promise<void> {
  await c.query(`create database ${ident(database)} with allow_connections = false`);
  await openClosedDatabase(c, database);
}

/**
 * Close to PUBLIC, then allow connections: the second half of createClosedDatabase, also what
 * finishes a database a killed create left unconnectable (`datallowconn` false). Its owner runs it.
 */
export async function openClosedDatabase(c: Pick<pg.ClientBase, 'query'>, database: string): Promise<void> {
  // Two creates of one shared database at once (a bulk run's rows): the one that did not make it
  // may finish it too, and PostgreSQL refuses two updates of one pg_database row at the same
  // moment ("tuple concurrently updated"); both statements are idempotent, so try again.
  for (let attempt = 1; ; attempt++) {
    try {
      await c.query(closeToPublicSql(database));
      await c.query(`alter database ${ident(database)} with allow_connections = true`);
      return;
    } catch (err) {
      if (attempt >= 20 || !/tuple concurrently updated/.test(String((err as Error)?.message))) throw err;
      await new Promise((r) => setTimeout(r, 25 * attempt));
    }
  }
}
