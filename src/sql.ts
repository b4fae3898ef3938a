import type pg from 'pg';

/**
 * Identifier and literal quoting for the few places where PostgreSQL takes no parameters (DDL).
 * Values otherwise go as query parameters.
 *
 * @example
 *   `create schema ${ident('t_acme')}` // create schema "t_acme"
 */
export function ident(name: string): string {
  if (name.includes('\0')) throw new Error('identifier contains a NUL byte');
  return `"${name.replace(/"/g, '""')}"`;
}

/** schema.table, both quoted. */
export function qualified(schema: string, name: string): string {
  return `${ident(schema)}.${ident(name)}`;
}

/** A string literal, for DDL that cannot take parameters (role passwords, policy expressions). */
export function literal(value: string): string {
  if (value.includes('\0')) throw new Error('literal contains a NUL byte');
  return `'${value.replace(/'/g, "''")}'`;
}

/**
 * The error of a CREATE that lost a race: another session created the same database, schema,
 * table or role between our check and our create (duplicate_database, duplicate_schema,
 * duplicate_table, duplicate_object, or unique_violation on the system catalog's own index).
 */
export function isAlreadyExists(err: unknown): boolean {
  const code = (err as { code?: string })?.code;
  return code === '42P04' || code === '42P06' || code === '42P07' || code === '42710' || code === '23505';
}

/**
 * CREATE SCHEMA if it is missing. The check first keeps the common case free of notices, and
 * a concurrent create of the same schema is not an error.
 */
export async function ensureSchema(c: Pick<pg.ClientBase, 'query'>, schema: string): Promise<void> {
  const exists = await c.query('select 1 from pg_namespace where nspname = $1', [schema]);
  if (exists.rowCount) return;
  try {
    await c.query(`create schema if not exists ${ident(schema)}`);
  } catch (err) {
    if (!isAlreadyExists(err)) throw err;
  }
}

/**
 * PostgreSQL refused the login itself (28P01 wrong password, 28000 no pg_hba entry or no such
 * role): the server runs, so "is it running?" would send the operator the wrong way.
 */
export function isLoginRefused(err: unknown): boolean {
  const code = (err as { code?: string })?.code;
  return code === '28P01' || code === '28000';
}
