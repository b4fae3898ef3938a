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
