import type pg from 'pg';
import { xactLockInReach } from '../operations/lock-holder.js';
import { FENCE_SETUP_LOCK_CLASSID } from '../operations/lock-ids.js';
import { ident, qualified } from '../sql.js';
import { FENCE_SCHEMA } from './pool/fence.js';

type Queryable = Pick<pg.ClientBase, 'query'>;

/**
 * Make sure the function `FENCE_SCHEMA.name` exists with this body (a trigger function unless
 * `fn` says otherwise), creating or replacing it only when it is missing or differs. Every fence of a schema or database tenant
 * used to run CREATE OR REPLACE FUNCTION: two fences at once in one database (two tenants of a
 * schema database moved or restored together) then updated the same pg_proc row, and one failed
 * with "tuple concurrently updated" (seen in the fault-kill suite). Once the function is there, a
 * fence writes no catalog row for it; creating it is serialised per database (FENCE_SETUP, held to
 * the end of the caller's transaction; a tenant's session holding that key is named, not waited
 * on). Run inside a transaction.
 *
 * @example
 *   await ensureFenceFunction(c, 'refuse_write', body);
 */
export async function ensureFenceFunction(
  c: Queryable,
  name: string,
  body: string,
  fn: { args?: string; returns?: string; volatile?: boolean } = {},
): Promise<void> {
  const same = `select exists (select from pg_proc p join pg_namespace n on n.oid = p.pronamespace
                 where n.nspname = $1 and p.proname = $2 and p.prosrc = $3) as ok`;
  if ((await c.query<{ ok: boolean }>(same, [FENCE_SCHEMA, name, body])).rows[0]?.ok) return;
  await xactLockInReach(c, FENCE_SETUP_LOCK_CLASSID, null, `the write-fence functions of this database`);
  await c.query(`create schema if not exists ${ident(FENCE_SCHEMA)}`);
  await c.query(
    `create or replace function ${qualified(FENCE_SCHEMA, name)}(${fn.args ?? ''}) returns ${fn.returns ?? 'trigger'}
       language plpgsql${fn.volatile ? ' volatile' : ''} set search_path = pg_catalog as $fn$${body}$fn$`,
  );
}
