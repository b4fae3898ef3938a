import type pg from 'pg';
import { literal } from '../sql.js';

type Queryable = Pick<pg.ClientBase, 'query'>;

/**
 * The snapshot of the caller's open repeatable-read transaction on `c`, for other sessions of the
 * same database to read in (joinSnapshot): several connections then copy and measure one source
 * as of one instant, as pg_dump -j and pgcopydb do. Valid while that transaction stays open.
 */
export async function exportSnapshot(c: Queryable): Promise<string> {
  const { rows } = await c.query<{ id: string }>('select pg_export_snapshot() as id');
  return rows[0].id;
}

/**
 * Open a read-only repeatable-read transaction on `c` that sees exactly what the exporter's does
 * (SET TRANSACTION SNAPSHOT must be its first statement). The caller ends it (rollback).
 */
export async function joinSnapshot(c: Queryable, id: string): Promise<void> {
  await c.query('begin isolation level repeatable read read only');
  // SET TRANSACTION SNAPSHOT takes no parameters; the id is PostgreSQL's own.
  await c.query(`set transaction snapshot ${literal(id)}`);
}
