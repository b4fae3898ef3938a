import type { CatalogDb } from '../catalog/open.js';
import { findTenant, updateTenant } from '../catalog/tenants.js';
import { recordEvent } from '../catalog/events.js';
import type { Config } from '../config/types.js';
import type { Fleet } from '../fleet/fleet.js';
import { liftRecordedFence } from './fence.js';
import { MoveRecord, type MoveRow } from './record.js';
import { removeEnd } from './remove.js';
import { liftSwitchFence } from './switch-fence.js';
import { dropReplication } from './replication.js';
import { removeCapture } from './capture/remove.js';

export interface RecoverDeps {
  config: Config;
  db: CatalogDb;
  fleet: Fleet;
  command: string;
}

export interface Recovered {
  move: number;
  /** What was found and undone, for the report. */
  cleaned: string[];
  /**
   * The move's row as recovery left it: a caller that writes the record again starts from this,
   * not from the row it read before (whose progress still says the copy, fence or replication
   * objects are there, and would put that back).
   */
  row: MoveRow;
}

/**
 * Clean up after a move whose process died (status `running`; the caller holds the tenant's lock,
 * so nobody else is working on it): lift its recorded fence, remove a target it recorded as
 * created (the catalog never pointed there), give the tenant its status back, and mark the
 * operation interrupted. For a `switched` move, only a fence left behind is lifted (the source's
 * switch fence stays until `move complete` or `move rollback`).
 */
export async function recoverMove(deps: RecoverDeps, row: MoveRow): Promise<Recovered> {
  const { db, fleet } = deps;
  const rec = MoveRecord.of(db, row);
  const plan = row.args.plan;
  const cleaned: string[] = [];
  // An online move's subscription still streams into the target after its mover died: dropped
  // first (with the slot and the publication), before the target it feeds is removed. A trigger
  // capture's triggers still write every change of the tenant to its change table: removed too.
  const repl = row.progress.replication;
  if (repl && !repl.droppedAt) {
    cleaned.push(...(await dropReplication(fleet, repl)));
    await rec.update({ replication: { ...repl, droppedAt: new Date().toISOString() } });
  }
  const capture = row.progress.capture;
  if (capture && !capture.removedAt) {
    cleaned.push(...(await removeCapture(fleet, capture)));
    await rec.update({ capture: { ...capture, removedAt: new Date().toISOString() } });
  }
  const fence = row.progress.fence;
  if (fence && !fence.liftedAt) {
    await liftRecordedFence(fleet, fence);
    const at = fence.at ? Date.parse(fence.at) : undefined;
    cleaned.push(`lifted the write fence at ${fence.shard}/${fence.database}/${fence.schema}`);
    await rec.update({ fence: { ...fence, liftedAt: new Date().toISOString() }, ...(at ? { writeBlockedMs: Date.now() - at } : {}) });
  }
  if (row.status === 'switched') return { move: row.id, cleaned, row: { ...row, progress: rec.progress } };
  // Killed between the source's switch fence and the catalog's switch: the source is still the tenant's.
  if (await liftSwitchFence(deps, rec)) cleaned.push(`lifted the switch fence at ${plan.from.target}`);
  if (row.progress.targetCreated) {
    await removeEnd(deps, plan.tenant, plan.key, plan.to, plan.from);
    cleaned.push(`removed the partial copy at ${plan.to.target}`);
  }
  const t = await findTenant(db, plan.tenant);
  await db.transaction().execute(async (tx) => {
    if (
      t &&
      t.status === 'moving' &&
      t.shard === plan.from.shard &&
      t.database_name === plan.from.database &&
      t.schema_name === plan.from.schema
    ) {
      await updateTenant(tx, plan.tenant, { status: row.args.status, status_detail: row.args.statusDetail });
      cleaned.push(`status back to ${row.args.status}`);
    }
    await rec.update({ phase: 'cleaned up', targetCreated: false }, 'interrupted', tx);
    await recordEvent(tx, {
      command: deps.command,
      action: 'move cleaned up',
      result: 'ok',
      tenant: plan.tenant,
      details: { move: row.id, from: plan.from.target, to: plan.to.target, cleaned },
    });
  });
  return { move: row.id, cleaned, row: { ...row, status: 'interrupted', progress: rec.progress } };
}
