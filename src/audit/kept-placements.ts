import type { CatalogDb } from '../catalog/open.js';
import { MODEL_TRAITS } from '../placement/placement.js';
import { tenantRoleName } from '../placement/naming.js';
import type { MoveEnd } from '../move/plan.js';

/** A placement no catalog row names that a move keeps on purpose: its source until `move complete` or `move rollback`, or the target it is building. */
export interface KeptPlacement {
  tenant: string;
  shard: string;
  database: string;
  schema: string;
  /** The tenant's role on that shard, when its model gives it one. */
  role: string | null;
}

/**
 * What unfinished moves keep (from their records): a switched move's source, which `move
 * rollback` goes back to, and a running move's target. Audit must not report them as orphans:
 * an operator following that finding would drop the copy rollback needs.
 */
export async function keptByMoves(db: CatalogDb): Promise<KeptPlacement[]> {
  const rows = await db
    .selectFrom('operations')
    .select(['tenant_slug', 'status', 'args'])
    .where('kind', '=', 'move')
    .where('status', 'in', ['running', 'switched'])
    .execute();
  return rows.flatMap((r) => {
    const plan = (r.args as { plan?: { from: MoveEnd; to: MoveEnd } } | null)?.plan;
    const end = plan ? (r.status === 'switched' ? plan.from : plan.to) : undefined;
    if (!end || !r.tenant_slug) return [];
    return [
      {
        tenant: r.tenant_slug,
        shard: end.shard,
        database: end.database,
        schema: end.schema,
        role: MODEL_TRAITS[end.model].ownRole ? tenantRoleName(r.tenant_slug) : null,
      },
    ];
  });
}
