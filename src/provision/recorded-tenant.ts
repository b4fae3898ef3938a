import type { CatalogDb } from '../catalog/open.js';
import type { NewTenant, TenantRow } from '../catalog/tables.js';
import { eventValues, type EventInput } from '../catalog/events.js';
import { OperationRecord, operationValues, type NewOperation } from '../operations/operation-record.js';

/**
 * The catalog writes of a create, each ONE statement: the tenant row with its operation record,
 * and the row turned active with its event and the record closed. A bulk run of 200 tenants made
 * ten catalog round trips per tenant on the process's one free catalog connection (the other is
 * the lock session), and its queue was the run's bottleneck; these are two.
 */

/**
 * Insert the tenant (provisioning) and its operation's running record together: the record exists
 * before anything is made at the shard, and exactly when the row does.
 */
export async function insertRecordedTenant(
  db: CatalogDb,
  t: NewTenant,
  op: NewOperation,
): Promise<{ tenant: TenantRow; op: OperationRecord }> {
  const progress = { phase: 'start' };
  const row = await db
    .with('op', (d) =>
      d
        .insertInto('operations')
        .values(operationValues({ ...op, progress }))
        .returning('id'),
    )
    .insertInto('tenants')
    .values(t)
    .returningAll()
    .returning((eb) => eb.selectFrom('op').select('op.id').as('op_id'))
    .executeTakeFirstOrThrow();
  const { op_id, ...tenant } = row;
  return { tenant: tenant as TenantRow, op: new OperationRecord(db, Number(op_id), (op.args ?? {}) as Record<string, unknown>, progress) };
}

/**
 * Turn the tenant active at `version`, log `event` and close the record succeeded, in one
 * statement (a kill before it leaves all three as they were: the re-run finishes).
 */
export async function activateRecordedTenant(
  db: CatalogDb,
  o: { slug: string; version: string | null; event: EventInput; op: OperationRecord },
): Promise<void> {
  await db
    .with('t', (d) =>
      d
        .updateTable('tenants')
        .set({ status: 'active', status_detail: null, schema_version: o.version, updated_at: new Date() })
        .where('slug', '=', o.slug)
        .returning('slug'),
    )
    .with('e', (d) => d.insertInto('events').values(eventValues(o.event)).returning('id'))
    .updateTable('operations')
    .set(o.op.finishValues('succeeded'))
    .where('id', '=', o.op.id)
    .execute();
  o.op.finishedBy('succeeded');
}
