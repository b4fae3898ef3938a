import { recordEvent } from '../catalog/events.js';
import { getTenant, updateTenant } from '../catalog/tenants.js';
import { TenantctlError, UsageError } from '../errors.js';
import { withTenantLock } from '../operations/tenant-lock.js';
import { assertSlug } from '../placement/slug.js';
import { copyTables } from '../copy/tables.js';
import { digestTable } from '../copy/streams.js';
import { sqlDigest } from '../copy/sql-digest.js';
import type { MoveEnd } from './plan.js';
import { fenceRecordFor, preparePoolFence, takeFence } from './fence.js';
import { MoveRecord, latestMove, openMove } from './record.js';
import { recoverMove, sweepReplication, sweepRolledBackCopies, type RecoverDeps } from './recover.js';
import { removeEnd } from './remove.js';

export interface RollbackResult {
  tenant: string;
  move: number;
  /** Where the tenant is now (the untouched source). */
  at: MoveEnd;
  /** The copy that was removed. */
  removed: MoveEnd;
  /** The move had switched (and was switched back), or had been killed before switching. */
  wasSwitched: boolean;
  cleaned: string[];
}

/**
 * `move rollback`: back to the untouched source, the copy removed. A move killed before its
 * switch is cleaned up (fence lifted, partial copy removed, status restored). A switched move is
 * switched back only when the tenant wrote nothing at the target since (its tables still hash as
 * verified, checked under a fence of the target), since those writes are not at the source;
 * otherwise refused (exit 2) with the way out (move it back).
 */
export async function rollbackMove(deps: RecoverDeps & { wait?: boolean }, slug: string): Promise<RollbackResult> {
  assertSlug(slug);
  await getTenant(deps.db, slug);
  return withTenantLock(deps.db, slug, { command: deps.command, wait: deps.wait }, async () => {
    const open = await openMove(deps.db, slug);
    if (!open) {
      // A rollback killed before it removed the copy at the target.
      const copies = await sweepRolledBackCopies(deps, slug);
      if (copies) {
        const last = await latestMove(deps.db, slug);
        if (last)
          return {
            tenant: slug,
            move: copies.move,
            at: last.args.plan.from,
            removed: last.args.plan.to,
            wasSwitched: true,
            cleaned: copies.cleaned,
          };
      }
      // An online move that ended while a shard did not answer may have left its replication objects.
      const swept = await sweepReplication(deps, slug);
      const last = swept && (await latestMove(deps.db, slug));
      if (swept && last) {
        return {
          tenant: slug,
          move: swept.move,
          at: last.args.plan.from,
          removed: last.args.plan.to,
          wasSwitched: false,
          cleaned: swept.cleaned,
        };
      }
    }
    if (!open) throw new UsageError('TENANT_STATE', `${slug} has no move to roll back`, `see tenantctl move status ${slug}`);
    const plan = open.args.plan;
    if (open.status === 'running') {
      const r = await recoverMove(deps, open);
      // recoverMove removes a copy only when one was recorded as created; say what was rolled back.
      const rec = MoveRecord.of(deps.db, { ...open, status: 'interrupted' });
      await rec.update({ phase: 'rolled back' }, 'rolled back');
      await recordEvent(deps.db, {
        command: deps.command,
        action: 'move rolled back',
        result: 'ok',
        tenant: slug,
        details: { move: open.id, at: plan.from.target, removed: plan.to.target, switched: false },
      });
      return { tenant: slug, move: open.id, at: plan.from, removed: plan.to, wasSwitched: false, cleaned: r.cleaned };
    }
    const { cleaned } = await recoverMove(deps, open);
    // Switched: fence the target while we check it is as verified and switch back.
    await preparePoolFence(deps.fleet, deps.config, plan.to);
    const rec = MoveRecord.of(deps.db, open);
    // Recorded first, as the move's fence: a rollback killed while it holds it is lifted by the next command.
    const frec = fenceRecordFor(plan.to, plan.key);
    await rec.update({ fence: frec });
    const fence = await takeFence(deps.fleet, frec);
    await rec.update({ fence: fence.record });
    try {
      const changed = await deps.fleet.withClient(plan.to.shard, plan.to.database, async (c) => {
        await c.query('begin isolation level repeatable read read only');
        try {
          const tables = await copyTables(c, plan.to.schema, deps.config);
          const want = new Map((open.progress.tables ?? []).map((t) => [t.table, t.target]));
          const out: string[] = [];
          for (const t of tables) {
            const w = want.get(t.table);
            const scope = { model: plan.to.model, schema: plan.to.schema, key: plan.key };
            // Measured as the move measured it: sqlDigest (`rows:a:b`), or RowTap's hash for a
            // move switched by an older tenantctl (`rows:hex`).
            const d =
              w && w.hash.split(':').length === 2 ? await digestTable(c, t, scope, deps.config) : await sqlDigest(c, t, scope, deps.config);
            if (!w || w.rows !== d.rows || w.hash !== d.hash) out.push(`${t.table} (${w?.rows ?? 0} → ${d.rows} rows)`);
          }
          return out;
        } finally {
          await c.query('rollback').catch(() => undefined);
        }
      });
      if (changed.length) {
        throw new UsageError(
          'TENANT_STATE',
          `${slug} has written at ${plan.to.target} since the switch (${changed.join(', ')}); rolling back to the source would lose those writes; nothing was changed`,
          `move it back instead (tenantctl move ${slug} --to-shard ${plan.from.shard} --to-model ${plan.from.model}) after tenantctl move complete ${slug}`,
        );
      }
      await deps.db.transaction().execute(async (tx) => {
        await updateTenant(tx, slug, {
          model: plan.from.model,
          shard: plan.from.shard,
          region: plan.from.region,
          database_name: plan.from.database,
          schema_name: plan.from.schema,
        });
        // The copy at the target is recorded as still there until it is removed: a rollback
        // killed before that leaves it for the next move command (sweepRolledBackCopies).
        await rec.update({ phase: 'rolled back', targetCreated: true }, 'rolled back', tx);
        await recordEvent(tx, {
          command: deps.command,
          action: 'move rolled back',
          result: 'ok',
          tenant: slug,
          details: { move: open.id, at: plan.from.target, removed: plan.to.target, switched: true },
        });
      });
    } finally {
      await fence.lift();
      await rec.update({ fence: { ...fence.record, liftedAt: new Date().toISOString() } }).catch(() => undefined);
    }
    if (process.env.TENANTCTL_INJECT_FAULT === 'move-rollback-hang-before-remove') await new Promise(() => setInterval(() => {}, 1000));
    try {
      await removeEnd(deps, plan.tenant, plan.key, plan.to, plan.from);
      await rec.update({ targetCreated: false });
    } catch (err) {
      throw new TenantctlError(
        'MOVE_FAILED',
        `${slug} points at ${plan.from.target} again, but removing the copy at ${plan.to.target} failed: ${(err as Error).message}`,
        `the move is rolled back in the catalog; drop ${plan.to.target} by hand once the shard is healthy (tenantctl move status ${slug} shows it)`,
      );
    }
    return { tenant: slug, move: open.id, at: plan.from, removed: plan.to, wasSwitched: true, cleaned };
  });
}
