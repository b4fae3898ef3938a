import type { Fleet } from '../../fleet/fleet.js';
import { TenantctlError } from '../../errors.js';
import { redactText } from '../../config/redact.js';
import { databaseExists } from '../../placement/pool/rows.js';
import { ident, qualified } from '../../sql.js';
import { CAPTURE_SCHEMA, type CaptureRecord, captureFunction, changeTable, triggerName, withTableLock } from './install.js';

/**
 * Remove a move's capture at the source: each table's triggers (one table per transaction: DROP
 * TRIGGER locks the table, waited for briefly with retries, as installCapture does), then the
 * function and the change table. Idempotent (a missing database, table or trigger is fine);
 * returns what it removed, throws naming what is left.
 */
export async function removeCapture(fleet: Fleet, rec: CaptureRecord): Promise<string[]> {
  if (!(await databaseExists(fleet, rec.shard, rec.database))) return [];
  const where = `${rec.shard}/${rec.database}`;
  const left: string[] = [];
  const have = await fleet.withClient(rec.shard, rec.database, (c) =>
    c
      .query<{ table: string; name: string }>(
        `select c.relname as table, g.tgname as name from pg_trigger g join pg_class c on c.oid = g.tgrelid
           join pg_namespace n on n.oid = c.relnamespace
          where n.nspname = $1 and g.tgname like $2 and not g.tgisinternal and g.tgparentid = 0`,
        [rec.schema, `tenantctl\\_capture\\_${rec.id}\\_%`],
      )
      .then((r) => r.rows),
  );
  const tables = [...new Set(have.map((h) => h.table))];
  for (const table of tables) {
    try {
      await withTableLock(fleet, rec, table, 'removing the capture triggers of', async (c) => {
        for (const op of ['i', 'u', 'd', 't'] as const) {
          await c.query(`drop trigger if exists ${ident(triggerName(rec.id, op))} on ${qualified(rec.schema, table)}`);
        }
      });
    } catch (err) {
      left.push(`the capture triggers on ${rec.schema}.${table} (${(err as Error).message})`);
    }
  }
  let dropped = false;
  if (left.length === 0) {
    try {
      dropped = await fleet.withTransaction(rec.shard, rec.database, async (c) => {
        const had = await c.query(
          `select 1 from pg_class c join pg_namespace n on n.oid = c.relnamespace where n.nspname = $1 and c.relname = $2`,
          [CAPTURE_SCHEMA, `changes_${rec.id}`],
        );
        // RESTRICT: a trigger still using the function (one this record did not list) fails the drop rather than vanishing silently.
        await c.query(`drop function if exists ${captureFunction(rec.id)}()`);
        await c.query(`drop table if exists ${changeTable(rec.id)}`);
        return Boolean(had.rowCount);
      });
    } catch (err) {
      left.push(`the change table ${CAPTURE_SCHEMA}.changes_${rec.id} (${(err as Error).message})`);
    }
  }
  if (left.length) {
    throw new TenantctlError(
      'MOVE_FAILED',
      redactText(`the move's change capture at ${where} is left: ${left.join('; ')}`),
      'run the same move again, or tenantctl move rollback <slug>, when the tables are not held: it removes it',
    );
  }
  const done: string[] = [];
  if (tables.length)
    done.push(`removed the capture triggers of move ${rec.id} on ${tables.length} table${tables.length > 1 ? 's' : ''} at ${where}`);
  if (dropped) done.push(`dropped the change table ${CAPTURE_SCHEMA}.changes_${rec.id} at ${where}`);
  return done;
}
