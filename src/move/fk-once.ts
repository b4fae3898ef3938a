import type pg from 'pg';
import { ident, qualified } from '../sql.js';

type Q = Pick<pg.ClientBase, 'query'>;

export interface HeldForeignKey {
  table: string;
  name: string;
  /** pg_get_constraintdef with every name schema-qualified. */
  def: string;
}

/**
 * "Checked once": drop the foreign keys of these tables (in the caller's transaction) so a bulk
 * load does not run one referential check per row, and add them back afterwards, when PostgreSQL
 * validates each with ONE set-based query over the table; a violation fails the transaction, so
 * nothing loaded is kept. ALTER TABLE takes an ACCESS EXCLUSIVE lock until the commit: right for
 * a placement no one else can see yet (a target created in this transaction); on a shared pool
 * table it makes the pool's other tenants wait for the load (the move's --fast-load says so).
 */
export async function dropForeignKeys(c: Q, schema: string, tables: string[]): Promise<HeldForeignKey[]> {
  const path = (await c.query<{ p: string }>(`select current_setting('search_path') as p`)).rows[0].p;
  // An empty search path makes pg_get_constraintdef qualify the referenced table.
  await c.query(`select set_config('search_path', '', true)`);
  try {
    const { rows } = await c.query<HeldForeignKey>(
      `select cl.relname as table, k.conname as name, pg_get_constraintdef(k.oid) as def
         from pg_constraint k join pg_class cl on cl.oid = k.conrelid join pg_namespace n on n.oid = cl.relnamespace
        where n.nspname = $1 and k.contype = 'f' and cl.relname = any($2) order by cl.relname, k.conname`,
      [schema, tables],
    );
    for (const r of rows) await c.query(`alter table ${qualified(schema, r.table)} drop constraint ${ident(r.name)}`);
    return rows;
  } finally {
    await c.query(`select set_config('search_path', $1, true)`, [path]);
  }
}

export async function restoreForeignKeys(c: Q, schema: string, held: HeldForeignKey[]): Promise<void> {
  for (const r of held) await c.query(`alter table ${qualified(schema, r.table)} add constraint ${ident(r.name)} ${r.def}`);
}
