import type { CatalogDb } from '../catalog/open.js';
import { updateTenant } from '../catalog/tenants.js';
import { recordEvent } from '../catalog/events.js';
import type { TableCheck } from './copy.js';
import type { MovePlan } from './plan.js';
import type { MoveRecord } from './record.js';
import type { ForeignKeyPath } from '../copy/pool-load-path.js';

/**
 * The switch of every move path (offline, replication, trigger capture): the catalog points at
 * the target, the move is recorded `switched` and the event `moved` written, in ONE catalog
 * transaction. `details` adds what a path reports beside the counts (online: the path taken);
 * `foreignKeyCheck`, how the load checked foreign keys and why (recorded for `move status` too).
 */
export async function recordSwitch(
  db: CatalogDb,
  command: string,
  plan: MovePlan,
  rec: MoveRecord,
  checks: TableCheck[],
  prev: { status: string; detail: string | null },
  details: Record<string, unknown> = {},
  foreignKeyCheck?: ForeignKeyPath,
): Promise<void> {
  const rows = checks.reduce((n, c) => n + c.rows, 0);
  const bytes = checks.reduce((n, c) => n + c.bytes, 0);
  await db.transaction().execute(async (tx) => {
    await updateTenant(tx, plan.tenant, {
      model: plan.to.model,
      shard: plan.to.shard,
      region: plan.to.region,
      database_name: plan.to.database,
      schema_name: plan.to.schema,
      status: prev.status as never,
      status_detail: prev.detail,
    });
    const fk = foreignKeyCheck ? { foreignKeyCheck } : {};
    await rec.update({ phase: 'switch', tables: checks, rows, bytes, targetCreated: false, ...fk }, 'switched', tx);
    await recordEvent(tx, {
      command,
      action: 'moved',
      result: 'ok',
      tenant: plan.tenant,
      details: {
        move: rec.id,
        ...details,
        ...fk,
        from: plan.from.target,
        to: plan.to.target,
        rows,
        bytes,
        tables: checks.map((c) => ({ table: c.table, rows: c.rows, hash: c.target.hash })),
      },
    });
  });
}
