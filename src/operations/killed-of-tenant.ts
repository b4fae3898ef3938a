import type { CatalogDb } from '../catalog/open.js';
import { unlockedTenants } from './unlocked-tenants.js';

/** A `running` record of the tenant that no command holds: what a killed operation left, as `tenant show` names it. */
export interface KilledOperation {
  id: number;
  kind: string;
  startedAt: Date;
  /** The tenant's application is refused writes until the sweep runs (a killed `restore --replace`'s fence). */
  writesRefused: boolean;
  what: string;
}

/** The sweep that cleans a killed operation runs first in every backup, restore and move of the tenant (sweep.ts). */
const CLEANED_BY = 'the next backup, restore or move of the tenant finishes or undoes it';

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
    const fenced = replaceFenceUp(r.kind, r.args, r.progress);
    const label = `${r.kind} ${r.id}${r.kind === 'restore' && (r.args as { replace?: boolean })?.replace ? ' --replace' : ''}`;
    return {
      id: Number(r.id),
      kind: r.kind,
      startedAt: r.started_at,
      writesRefused: fenced,
      what: `${label} was killed${fenced ? ": its write fence stays up (the tenant's writes are refused, SQLSTATE 25006)" : ''}; ${CLEANED_BY}`,
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
