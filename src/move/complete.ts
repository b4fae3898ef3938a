import { recordEvent } from '../catalog/events.js';
import { TenantctlError, UsageError } from '../errors.js';
import { runTenantOperation } from '../operations/tenant-operation.js';
import { assertSlug } from '../placement/slug.js';
import type { MoveEnd } from './plan.js';
import { MoveRecord, openMove } from './record.js';
import { recoverMove, type RecoverDeps } from './recover.js';
import { removeEnd } from './remove.js';
import type { NamesAfter } from './names.js';
import { namesNow } from './names-now.js';
import { liftSwitchFence } from './switch-fence.js';
import { tablesAtSwitch } from './tables-at-switch.js';
import { changedSinceSwitch, describeChanges } from './unchanged.js';

export interface CompleteResult {
  tenant: string;
  move: number;
  removed: MoveEnd;
  at: MoveEnd;
  /** Leftovers found and cleaned first (a fence of a killed move). */
  cleaned: string[];
  /** What the application connects with (unchanged: the same names as before the move). */
  names: NamesAfter;
  /** The source was proved unchanged since the switch (false only with `discardSourceWrites`). */
  sourceUnchanged: boolean;
}

export interface CompleteOptions {
  wait?: boolean;
  /** Remove the source even when it was written after the switch (those writes are lost). */
  discardSourceWrites?: boolean;
}

/**
 * `move complete`: the switched move is final; the source is removed through the placement
 * drivers (pool rows deleted and proved gone, schema or database dropped), then its switch fence
 * lifted. Before anything is removed the source is measured again as the move verified it
 * (unchanged.ts): a source written since the switch (a write the fence did not stop, or one made
 * by hand) is refused, exit 1, naming the tables and row counts, nothing removed, unless
 * `discardSourceWrites`. Refused (exit 2) when the tenant has no switched move.
 */
export async function completeMove(deps: RecoverDeps & CompleteOptions, slug: string): Promise<CompleteResult> {
  assertSlug(slug);
  return runTenantOperation(deps, { kind: 'move complete', slug, sweep: false }, async () => {
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
    const { cleaned, row } = await recoverMove(deps, open);
    const plan = open.args.plan;
    // From the row as recovery left it (a fence it lifted stays recorded as lifted).
    const rec = MoveRecord.of(deps.db, row);
    let sourceUnchanged = !open.progress.sourceDiscarded;
    // Measured once: a complete killed after this removes the source without measuring a half-removed one.
    if (!open.progress.sourceCheckedAt) {
      const changed = await changedSinceSwitch(deps, plan.from, plan.key, await tablesAtSwitch(deps, rec, plan, open.progress), 'source', {
        columns: open.progress.sourceColumns,
      });
      if (changed.length && !deps.discardSourceWrites) {
        throw new TenantctlError(
          'MOVE_SOURCE_CHANGED',
          `${slug} was written at the source ${plan.from.target} after the switch: ${describeChanges(changed)}; those writes are not at ${plan.to.target}, so nothing was removed`,
          `tenantctl move rollback ${slug} goes back to the source with them (refused if ${plan.to.target} was written too); or carry them over to ${plan.to.target} yourself and run tenantctl move complete ${slug} --discard-source-writes`,
        );
      }
      sourceUnchanged = changed.length === 0;
      await rec.update({
        phase: 'completing',
        sourceCheckedAt: new Date().toISOString(),
        ...(sourceUnchanged ? {} : { sourceDiscarded: changed }),
      });
    }
    await removeEnd(deps, plan.tenant, plan.key, plan.from, plan.to);
    // The source's rows are gone. A schema or database source went with its fence; a pool's key
    // stays fenced (a row, no table lock: other tenants write on), so an application not yet
    // pointed at the new placement is refused, not writing rows nobody reads.
    if (rec.progress.switchFence?.kind !== 'key') await liftSwitchFence(deps, rec);
    await deps.db.transaction().execute(async (tx) => {
      await rec.update({ phase: 'completed', sourceRemovedAt: new Date().toISOString() }, 'succeeded', tx);
      await recordEvent(tx, {
        command: deps.command,
        action: 'move completed',
        result: 'ok',
        tenant: slug,
        details: {
          move: open.id,
          removed: plan.from.target,
          at: plan.to.target,
          ...(sourceUnchanged ? {} : { discardedSourceWrites: rec.progress.sourceDiscarded }),
        },
      });
    });
    return {
      tenant: slug,
      move: open.id,
      removed: plan.from,
      at: plan.to,
      cleaned,
      sourceUnchanged,
      names: await namesNow(deps, slug, plan.to, plan.from),
    };
  });
}
