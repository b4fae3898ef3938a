import type pg from 'pg';
import { ident, literal, qualified } from '../sql.js';
import { FENCE_SCHEMA, FENCE_SQLSTATE } from './pool/fence.js';
import { ensureFenceFunction } from './fence-function.js';
import { lockForFence, SWITCH_TRIGGER, schemaTables, unfenceTables } from './table-fence.js';

/** How long the switch fence waits for the locks of its tables (nothing writes there: the move's fence is up). */
const SWITCH_FENCE_WAIT_MS = 30_000;

type Queryable = Pick<pg.ClientBase, 'query'>;

/**
 * Fence an exclusive placement (a schema or database tenant's) that a move has switched away
 * from: a BEFORE INSERT/UPDATE/DELETE/TRUNCATE statement trigger on every table of the schema
 * raising SQLSTATE 25006 with `message` (where the tenant lives now), so the application's old
 * URL gets a clear error on its first write while reads go on until `move complete` drops the
 * placement. Triggers persist (a killed tenantctl leaves them up) and fire for every role,
 * including the tenant's own, which cannot drop them (tenantctl owns the tables). The message
 * travels as the trigger's argument, so one function serves every schema of a shared database.
 * Run inside a transaction (with the move's own fence still up, so nothing writes meanwhile).
 */
export async function fenceSwitchedTables(c: Queryable, schema: string, message: string, hint: string): Promise<string[]> {
  await ensureFenceFunction(
    c,
    'refuse_switched',
    `
    begin
      raise exception '%', tg_argv[0] using errcode = '${FENCE_SQLSTATE}', hint = tg_argv[1];
    end `,
  );
  const tables = await schemaTables(c, schema);
  await lockForFence(c, schema, tables, SWITCH_FENCE_WAIT_MS);
  for (const t of tables) {
    await c.query(`drop trigger if exists ${ident(SWITCH_TRIGGER)} on ${qualified(schema, t)}`);
    await c.query(
      `create trigger ${ident(SWITCH_TRIGGER)} before insert or update or delete or truncate on ${qualified(schema, t)}
         for each statement execute function ${qualified(FENCE_SCHEMA, 'refuse_switched')}(${literal(message)}, ${literal(hint)})`,
    );
  }
  return tables;
}

/** Lift the switch fence: drop the trigger wherever it is (idempotent; a missing schema is fine). */
export function unfenceSwitchedTables(c: Queryable, schema: string): Promise<number> {
  return unfenceTables(c, schema, SWITCH_TRIGGER);
}
