import type { CatalogDb } from '../catalog/open.js';
import { unlockedTenants } from './unlocked-tenants.js';
import { RECORD_ONLY_KINDS } from './sweep/killed-records.js';

/** A `running` record of the tenant that no command holds: what a killed operation left, as `tenant show` names it. */
export interface KilledOperation {
  id: number;
  kind: string;
  startedAt: Date;
  /** The tenant's application is refused writes until the sweep runs, or the move is resumed or rolled back (a killed `restore --replace`'s or move's trigger fence). */
  writesRefused: boolean;
  what: string;
}

/**
 * What ends a killed operation of each kind: the one sweep runs first in every backup, restore and
 * move of the tenant (sweep.ts); a move is resumed or rolled back by its own commands; the
 * record-only kinds (sweep/killed-records.ts) are finished by running them again.
 */
function whatEnds(kind: string, slug: string): string {
  if (kind === 'move') return `run the move again to resume it, or tenantctl move rollback ${slug}`;
  if ((RECORD_ONLY_KINDS as readonly string[]).includes(kind))
    return `run the ${kind} again to finish it (the tenant's next command closes its record)`;
  if (kind === 'backup') return 'the next backup, restore or move of the tenant removes its partial archive';
  return 'the next backup, restore or move of the tenant finishes or undoes it';
}

/**
 * The tenant's killed operations, read from the catalog only (no shard is asked): its `running`
 * records while its lock is free. The tenant's status says nothing of them (a killed `restore
 * --replace` leaves the tenant `active` with its writes refused by the fence), so `tenant show`
 * lists them with what they block and what cleans them. Empty while a command holds the tenant:
 * its records are its own, not leftovers.
 */
export async function killedOperationsOf(db: CatalogDb, slug: string): Promise<KilledOperation[]> {
  const rows = await db
    .selectFrom('operations')
    .select(['id', 'kind', 'args', 'progress', 'started_at'])
    .where('tenant_slug', '=', slug)
    .where('status', '=', 'running')
    .orderBy('id')
    .execute();
  if (rows.length === 0 || !(await unlockedTenants(db, [slug])).has(slug)) return [];
  return rows.map((r) => {
    const switchUp = moveSwitchFenceUp(r.kind, r.progress);
    const fenced = replaceFenceUp(r.kind, r.args, r.progress) || moveFenceUp(r.kind, r.progress) || switchUp !== null;
    const label = `${r.kind} ${r.id}${r.kind === 'restore' && (r.args as { replace?: boolean })?.replace ? ' --replace' : ''}`;
    return {
      id: Number(r.id),
      kind: r.kind,
      startedAt: r.started_at,
      writesRefused: fenced,
      what: `${label} was killed${
        switchUp !== null
          ? `: its switch fence stays up (the tenant's writes are refused, SQLSTATE 25006, telling the application it has moved to ${switchUp}, which the catalog does not say yet)`
          : fenced
            ? ": its write fence stays up (the tenant's writes are refused, SQLSTATE 25006)"
            : ''
      }; ${whatEnds(r.kind, slug)}`,
    };
  });
}

/**
 * A killed `restore --replace` of a schema or database tenant, before its switch: the fence is
 * statement triggers on the live placement, which outlive the process (replace-fence.ts). A
 * pool's fence was a lock of the killed session, gone with it; from the switch on the
 * application is on the restored placement and the fence is on the one replaced.
 */
function replaceFenceUp(kind: string, args: unknown, progress: unknown): boolean {
  if (kind !== 'restore') return false;
  const a = args as { replace?: boolean; fence?: { kind?: string } } | null;
  const phase = (progress as { phase?: string } | null)?.phase;
  return Boolean(a?.replace && a.fence?.kind === 'trigger' && phase !== 'switch' && phase !== 'switched');
}

/**
 * A killed move whose fence was recorded and not lifted: a schema or database tenant's fence is
 * statement triggers on the source (move/fence.ts), which outlive the process; a pool's is a lock
 * of the killed session (advisory), gone with it. Recorded before the triggers are made, so a
 * kill in between says "up" where nothing was made yet: the resume or rollback ends either.
 */
function moveFenceUp(kind: string, progress: unknown): boolean {
  if (kind !== 'move') return false;
  const f = (progress as { fence?: { kind?: string; at?: string; liftedAt?: string } } | null)?.fence;
  return Boolean(f?.at && !f.liftedAt && f.kind === 'trigger');
}

/**
 * A move killed after its switch fence was placed at the source and before the catalog switched:
 * that fence (a row of the pool's switched table, or statement triggers) outlives the process, and
 * says the tenant lives at the target. Where it says, or null.
 */
function moveSwitchFenceUp(kind: string, progress: unknown): string | null {
  if (kind !== 'move') return null;
  const f = (progress as { switchFence?: { at?: string; liftedAt?: string; livesAt?: string } } | null)?.switchFence;
  return f?.at && !f.liftedAt ? (f.livesAt ?? 'the target') : null;
}
