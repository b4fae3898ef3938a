import { recordEvent } from '../catalog/events.js';
import { getTenant } from '../catalog/tenants.js';
import { UsageError } from '../errors.js';
import { withTenantLock } from '../operations/tenant-lock.js';
import { assertSlug } from '../placement/slug.js';
import type { MoveEnd } from './plan.js';
import { MoveRecord, openMove } from './record.js';
import { recoverMove, type RecoverDeps } from './recover.js';
import { removeEnd } from './remove.js';

export interface CompleteResult {
  tenant: string;
  move: number;
  removed: MoveEnd;
  at: MoveEnd;
  /** Leftovers found and cleaned first (a fence of a killed move). */
  cleaned: string[];
}

/**
 * `move complete`: the switched move is final; the source is removed through the placement
 * drivers (pool rows deleted and proved gone, schema or database dropped). Refused (exit 2) when
 * the tenant has no switched move.
 */
export async function completeMove(deps: RecoverDeps & { wait?: boolean }, slug: string): Promise<CompleteResult> {
  assertSlug(slug);
  await getTenant(deps.db, slug);
  return withTenantLock(deps.db, slug, { command: deps.command, wait: deps.wait }, async () => {
    const open = await openMove(deps.db, slug);
    if (open?.status !== 'switched') {
      throw new UsageError(
        'TENANT_STATE',
        open
          ? `the move of ${slug} (move ${open.id}) did not switch (it was killed in phase ${open.progress.phase}); there is no source to remove`
          : `${slug} has no move waiting to be completed`,
        open ? `tenantctl move ${slug} … again to resume it, or tenantctl move rollback ${slug}` : `see tenantctl move status ${slug}`,
      );
    }
    const { cleaned } = await recoverMove(deps, open);
    const plan = open.args.plan;
    await removeEnd(deps, plan.tenant, plan.key, plan.from, plan.to);
    const rec = MoveRecord.of(deps.db, open);
    await deps.db.transaction().execute(async (tx) => {
      await rec.update({ phase: 'completed', sourceRemovedAt: new Date().toISOString() }, 'succeeded', tx);
      await recordEvent(tx, {
        command: deps.command,
        action: 'move completed',
        result: 'ok',
        tenant: slug,
        details: { move: open.id, removed: plan.from.target, at: plan.to.target },
      });
    });
    return { tenant: slug, move: open.id, removed: plan.from, at: plan.to, cleaned };
  });
}
