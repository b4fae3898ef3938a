import type { CatalogDb } from '../catalog/open.js';
import { latestMove } from './record.js';

/** A move of the tenant that switched and was neither completed nor rolled back: its source is still kept. */
export interface SwitchedMove {
  id: number;
  from: string;
  to: string;
  what: string;
}

/**
 * The tenant's switched move, for `tenant show`: the catalog already names the target, so nothing
 * else there says that the source still holds a copy (with its write and switch fences), that
 * `tenant delete` is refused meanwhile, or what ends it. Whether the move's process was killed
 * after its switch or ended as every move does, the next step is the same.
 */
export async function switchedMoveOf(db: CatalogDb, slug: string): Promise<SwitchedMove | null> {
  const m = await latestMove(db, slug);
  if (m?.status !== 'switched') return null;
  const from = `${m.args.plan.from.model} ${m.args.plan.from.target}`;
  const to = `${m.args.plan.to.model} ${m.args.plan.to.target}`;
  return {
    id: m.id,
    from,
    to,
    what:
      `move ${m.id} switched from ${from}: that source is kept, refusing writes, until tenantctl move complete ${slug} ` +
      `drops it (or tenantctl move rollback ${slug} goes back to it)`,
  };
}
