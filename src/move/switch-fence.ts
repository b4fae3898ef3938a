import type { SwitchFenceRecord } from './types.js';
import type { Config } from '../config/types.js';
import type { Fleet } from '../fleet/fleet.js';
import { databaseExists } from '../placement/pool/rows.js';
import { fenceSwitchedKey, unfenceSwitchedKey } from '../placement/pool/switch-fence.js';
import { fenceSwitchedTables, unfenceSwitchedTables } from '../placement/table-switch-fence.js';
import type { CopyTable } from '../copy/tables.js';
import type { MovePlan } from './plan.js';
import type { MoveRecord } from './record.js';
import { drivers } from '../placement/drivers.js';

export function switchFenceRecordFor(plan: MovePlan): SwitchFenceRecord {
  const { from, to } = plan;
  return {
    kind: drivers[from.model].fence.switch,
    shard: from.shard,
    database: from.database,
    schema: from.schema,
    key: plan.key,
    tenant: plan.tenant,
    livesAt: `shard ${to.shard}, database ${to.database}, schema ${to.schema} (${to.target})`,
  };
}

/**
 * Record, then place, the source's switch fence (in one transaction at the source); call it while the move's own fence is still up
 * (so no write slips in between) and before the catalog switches (so a kill after the switch
 * never leaves the source writable).
 */
export async function placeSwitchFence(
  deps: { fleet: Fleet; config: Config },
  rec: MoveRecord,
  plan: MovePlan,
  tables: CopyTable[],
): Promise<void> {
  const f = switchFenceRecordFor(plan);
  // With the columns the move digested: `move complete` measures the source by them again.
  await rec.update({ switchFence: f, sourceColumns: Object.fromEntries(tables.map((t) => [t.table, t.columns])) });
  await deps.fleet.withTransaction(f.shard, f.database, async (c) => {
    if (f.kind === 'key') return fenceSwitchedKey(c, f.schema, deps.config, { key: f.key, tenant: f.tenant, livesAt: f.livesAt });
    await fenceSwitchedTables(
      c,
      f.schema,
      `${f.tenant} has moved: it lives at ${f.livesAt} now; this placement no longer takes its writes`,
      `connect with what tenantctl resolve ${f.tenant} prints; reads here work until tenantctl move complete removes this copy`,
    );
  });
  await rec.update({ switchFence: { ...f, at: new Date().toISOString() } });
}

/** Lift a recorded switch fence (idempotent; safe when the placement is gone) and record it. */
export async function liftSwitchFence(deps: { fleet: Fleet; config: Config }, rec: MoveRecord): Promise<boolean> {
  const f = rec.progress.switchFence;
  if (!f || f.liftedAt) return false;
  if (await databaseExists(deps.fleet, f.shard, f.database)) {
    await deps.fleet.withTransaction(f.shard, f.database, async (c) => {
      if (f.kind === 'key') await unfenceSwitchedKey(c, deps.config, f.key);
      else await unfenceSwitchedTables(c, f.schema);
    });
  }
  await rec.update({ switchFence: { ...f, liftedAt: new Date().toISOString() } });
  return true;
}
export type { SwitchFenceRecord } from './types.js';
