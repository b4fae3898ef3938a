import type { CatalogDb } from '../catalog/open.js';
import { getTenant } from '../catalog/tenants.js';
import { describeTenantHolder } from '../operations/tenant-lock.js';
import { assertSlug } from '../placement/slug.js';
import type { MoveEnd } from './plan.js';
import { latestMove, type MoveProgress, type MoveStatus } from './record.js';
import type { FenceRecord } from './fence.js';
import type { Fleet } from '../fleet/fleet.js';
import { countFenceTriggers } from '../placement/table-fence.js';
import type { TableCheck } from './copy.js';
import type { ForeignKeyPath } from '../copy/pool-load-path.js';

export interface MoveStatusResult {
  tenant: string;
  /** The tenant's catalog status and placement now. */
  tenantStatus: string;
  at: string;
  move: null | {
    id: number;
    status: MoveStatus;
    /** An online move (logical replication): writes were blocked only for its last catch-up. */
    online: boolean;
    phase: string;
    /** Running and its holder is alive (holds the tenant's lock), or the holder is gone (crashed). */
    live: boolean | null;
    holder: string;
    from: MoveEnd;
    to: MoveEnd;
    /** Rows and bytes at the target now: 0 once the copy was removed (see `copy`). */
    rows: number;
    bytes: number;
    /**
     * The copy at the target: `kept` (switched, or finished with it left for the sweep), `removed`
     * (the move failed or was rolled back and its copy is gone: `removedRows` it had), `left` (its
     * process died: the tenant's next command removes it), or `copying` (live).
     */
    copy: 'copying' | 'kept' | 'removed' | 'left';
    removedRows?: number;
    writeBlockedMs: number | null;
    /**
     * `up`: whether the write fence still refuses writes now. A pool tenant's (a session lock)
     * goes with its process; a table fence (triggers) stays until a move command lifts it, and
     * is looked for when its process is gone (null: its shard did not answer).
     */
    fence: { at?: string; liftedAt?: string; up: boolean | null } | null;
    /** The source's fence from the switch until complete or rollback (switch-fence.ts). */
    switchFence: { at?: string; liftedAt?: string } | null;
    phases: Record<string, number>;
    tables: TableCheck[];
    /** How the load checked foreign keys, and why; null before the switch and for online moves. */
    foreignKeyCheck: ForeignKeyPath | null;
    startedAt: string;
    heartbeatAt: string;
    error?: string;
    next: string;
  };
}

/** `move status`: the tenant's latest move as recorded, and whether its process still runs. */
export async function moveStatus(db: CatalogDb, slug: string, fleet?: Fleet): Promise<MoveStatusResult> {
  assertSlug(slug);
  const t = await getTenant(db, slug);
  const m = await latestMove(db, slug);
  const at = `${t.shard}/${t.database_name}/${t.schema_name}`;
  if (!m) return { tenant: slug, tenantStatus: t.status, at, move: null };
  const holder = m.status === 'running' ? await describeTenantHolder(db, slug) : null;
  const live = m.status === 'running' ? holder !== null : null;
  const p = m.progress;
  const fenceUp = p.fence ? await isFenceUp(p.fence, live === true, fleet) : null;
  const switchUp = Boolean(p.switchFence?.at && !p.switchFence.liftedAt);
  const blocked = p.writeBlockedMs ?? fencedFor(m.status, p, live === true || fenceUp === true || switchUp);
  // A rollback killed before it removed the copy, or a failed move that could not: recorded as still there.
  const copyLeft = m.status !== 'running' && m.status !== 'switched' && m.status !== 'succeeded' && Boolean(p.targetCreated);
  const next =
    m.status === 'switched'
      ? `tenantctl move complete ${slug} (drops the source) or tenantctl move rollback ${slug}`
      : m.status === 'running' && !live
        ? `killed: run the move again to resume, or tenantctl move rollback ${slug}`
        : m.status === 'running'
          ? 'running'
          : copyLeft
            ? `nothing for the tenant; its copy at ${m.args.plan.to.target} is left (a killed rollback, or a cleanup that could not finish): the tenant's next backup, restore or move removes it`
            : 'nothing';
  // What is true after the sweep: a copy a failed, interrupted or rolled-back move removed holds no rows.
  const copy =
    m.status === 'running'
      ? live
        ? 'copying'
        : 'left'
      : m.status === 'switched' || m.status === 'succeeded'
        ? 'kept'
        : copyLeft
          ? 'left'
          : 'removed';
  const gone = copy === 'removed' || copy === 'left';
  return {
    tenant: slug,
    tenantStatus: t.status,
    at,
    move: {
      id: m.id,
      status: m.status,
      online: Boolean(m.args.online),
      phase: p.phase,
      live,
      holder: m.holder,
      from: m.args.plan.from,
      to: m.args.plan.to,
      rows: gone ? 0 : (p.rows ?? 0),
      bytes: gone ? 0 : (p.bytes ?? 0),
      copy,
      ...(gone && p.rows ? { removedRows: p.rows } : {}),
      writeBlockedMs: blocked,
      fence: p.fence ? { at: p.fence.at, liftedAt: p.fence.liftedAt, up: fenceUp } : null,
      switchFence: p.switchFence ? { at: p.switchFence.at, liftedAt: p.switchFence.liftedAt } : null,
      phases: p.phases ?? {},
      tables: p.tables ?? [],
      foreignKeyCheck: p.foreignKeyCheck ?? null,
      startedAt: m.startedAt.toISOString(),
      heartbeatAt: m.heartbeatAt.toISOString(),
      error: p.error,
      next,
    },
  };
}

/**
 * How long writes were blocked where the move did not record it: while its process runs, or a
 * fence of a killed one still refuses them (its trigger fence, or its switch fence placed before
 * the catalog switched), since the fence; switched by a process killed before it lifted the
 * fence, from the fence to the switch (the application writes at the target since).
 */
function fencedFor(status: string, p: MoveProgress, refusing: boolean): number | null {
  if (!p.fence?.at || p.fence.liftedAt) return null;
  if (status === 'running' && refusing) return Date.now() - Date.parse(p.fence.at);
  if (status === 'switched' && p.switchFence?.at) return Math.max(0, Date.parse(p.switchFence.at) - Date.parse(p.fence.at));
  return null;
}

/**
 * Whether a recorded fence refuses writes now. Its process alive: as recorded. Gone (killed, or
 * it failed when its shard or the catalog stopped answering and could not record the lift): a
 * session-lock fence is gone with it; a trigger fence is looked for at its placement.
 */
async function isFenceUp(f: FenceRecord, live: boolean, fleet?: Fleet): Promise<boolean | null> {
  if (f.liftedAt || !f.at) return false;
  if (live) return true;
  if (f.kind === 'advisory') return false;
  if (!fleet) return true;
  try {
    return await fleet.withClient(f.shard, f.database, async (c) => (await countFenceTriggers(c, f.schema)) > 0);
  } catch {
    return null;
  }
}
