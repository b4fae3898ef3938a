import { recordEvent } from '../catalog/events.js';
import { getTenant, updateTenant } from '../catalog/tenants.js';
import { readApplied, versionOf } from '../migrate/tracking.js';
import { TenantctlError, UsageError } from '../errors.js';
import { runTenantOperation } from '../operations/tenant-operation.js';
import { assertSlug } from '../placement/slug.js';
import type { MoveEnd } from './plan.js';
import { fenceRecordFor, preparePoolFence, takeFence } from './fence.js';
import { MoveRecord, latestMove, openMove, type MoveRow } from './record.js';
import { recoverMove, type RecoverDeps } from './recover.js';
import { sweepTenant } from '../operations/sweep.js';
import { removeEnd } from './remove.js';
import { namesAfter, type NamesAfter } from './names.js';
import { liftSwitchFence, switchFenceRecordFor } from './switch-fence.js';
import { fenceSwitchedKey } from '../placement/pool/switch-fence.js';
import { tablesAtSwitch } from './tables-at-switch.js';
import { changedSinceSwitch, describeChanges } from './unchanged.js';
import { faultPoint } from '../operations/fault-points.js';
import { tenantRole } from '../placement/placement.js';
import { ADMIN_DATABASE } from '../placement/databases.js';
import { endRoleSessions } from '../placement/roles.js';

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
  /** What the application connects with again (the source's names). */
  names: NamesAfter;
  /**
   * Switched back to a source whose migrations differ from the version the catalog had for the
   * tenant (the target was migrated after the switch): the catalog now says the source's, and
   * `migrate up` brings it forward.
   */
  versions?: { source: string | null; before: string | null };
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
  return runTenantOperation(deps, { kind: 'move rollback', slug, sweep: false }, async () => {
    const open = await openMove(deps.db, slug);
    if (!open) {
      const swept = await sweptRollback(deps, slug);
      if (swept) return swept;
      throw new UsageError('TENANT_STATE', `${slug} has no move to roll back`, `see tenantctl move status ${slug}`);
    }
    if (open.status === 'running') return rollbackUnswitched(deps, open);
    return rollbackSwitched(deps, open);
  });
}

/**
 * No open move: a rollback killed before it removed the copy at the target, or an online move
 * that ended while a shard did not answer (its replication objects): the sweep cleans them.
 */
async function sweptRollback(deps: RecoverDeps, slug: string): Promise<RollbackResult | undefined> {
  const moves = (await sweepTenant(deps, { slug })).filter((s) => s.kind === 'move');
  const last = moves.length ? await latestMove(deps.db, slug) : undefined;
  if (last) {
    const cleaned = moves.flatMap((s) => s.done ?? [s.what]);
    return {
      tenant: slug,
      move: moves.at(-1)!.operation!,
      at: last.args.plan.from,
      removed: last.args.plan.to,
      wasSwitched: cleaned.some((c) => c.includes('killed move rollback')),
      cleaned,
      names: namesAfter(deps.config, slug, last.args.plan.from, last.args.plan.to),
    };
  }
  return undefined;
}

/** A move killed before its switch: cleaned up (fence lifted, partial copy removed, status restored) and recorded rolled back. */
async function rollbackUnswitched(deps: RecoverDeps, open: MoveRow): Promise<RollbackResult> {
  const plan = open.args.plan;
  const slug = plan.tenant;
  const r = await recoverMove(deps, open);
  // recoverMove removes a copy only when one was recorded as created; say what was rolled back.
  // From the row as recovery left it: the one read before still says the copy is there.
  const rec = MoveRecord.of(deps.db, r.row);
  await rec.update({ phase: 'rolled back' }, 'rolled back');
  await recordEvent(deps.db, {
    command: deps.command,
    action: 'move rolled back',
    result: 'ok',
    tenant: slug,
    details: { move: open.id, at: plan.from.target, removed: plan.to.target, switched: false },
  });
  return {
    tenant: slug,
    move: open.id,
    at: plan.from,
    removed: plan.to,
    wasSwitched: false,
    cleaned: r.cleaned,
    names: namesAfter(deps.config, slug, plan.from, plan.to),
  };
}

/**
 * A switched move, switched back only when the tenant wrote nothing at the target since (its
 * tables still hash as verified, checked under a fence of the target); the copy removed after.
 */
async function rollbackSwitched(deps: RecoverDeps, open: MoveRow): Promise<RollbackResult> {
  const plan = open.args.plan;
  const slug = plan.tenant;
  const { cleaned, row } = await recoverMove(deps, open);
  const rec = MoveRecord.of(deps.db, row);
  const atSwitch = await tablesAtSwitch(deps, rec, plan, open.progress);
  // The catalog's version follows the target (migrate up migrates it, not the source).
  const before = (await getTenant(deps.db, slug)).schema_version;
  const sourceVersion = await versionAt(deps, plan.from);
  const refuseIfWritten = async () => {
    // As move complete measures the source: over the columns the move copied, so a column a
    // migration added at the target since is not a write; a new table is one unless a migration
    // since the switch may have made it (then only its rows are).
    const changed = await changedSinceSwitch(deps, plan.to, plan.key, atSwitch, 'target', {
      columns: open.progress.sourceColumns,
      anyNewTable: sourceVersion === before,
    });
    if (changed.length) {
      throw new UsageError(
        'TENANT_STATE',
        `${slug} has written at ${plan.to.target} since the switch (${describeChanges(changed)}); rolling back to the source would lose those writes; nothing was changed`,
        `move it back instead (tenantctl move ${slug} --to-shard ${plan.from.shard} --to-model ${plan.from.model}) after tenantctl move complete ${slug}`,
      );
    }
  };
  // A tenant that wrote since the switch is refused before its writes are fenced: a refused
  // rollback must not block the application it refuses to disturb.
  await refuseIfWritten();
  // Then fence the target while we check again (a write may have come since) and switch back.
  await preparePoolFence(deps.fleet, deps.config, plan.to);
  // Recorded first, as the move's fence: a rollback killed while it holds it is lifted by the next command.
  const frec = fenceRecordFor(plan.to, plan.key);
  await rec.update({ fence: frec });
  const fence = await takeFence(deps.fleet, frec);
  await rec.update({ fence: fence.record });
  try {
    await refuseIfWritten();
    // The source takes writes again before the catalog points there: a kill in between leaves
    // a source that `move complete` finds changed (and refuses), never writes that get dropped.
    await liftSwitchFence(deps, rec);
    await deps.db.transaction().execute(async (tx) => {
      await updateTenant(tx, slug, {
        model: plan.from.model,
        shard: plan.from.shard,
        region: plan.from.region,
        database_name: plan.from.database,
        schema_name: plan.from.schema,
        schema_version: sourceVersion,
      });
      // The copy at the target is recorded as still there until it is removed: a rollback
      // killed before that leaves it for the next command's sweep (src/operations/sweep/moves.ts).
      await rec.update({ phase: 'rolled back', targetCreated: true }, 'rolled back', tx);
      await recordEvent(tx, {
        command: deps.command,
        action: 'move rolled back',
        result: 'ok',
        tenant: slug,
        details: { move: open.id, at: plan.from.target, removed: plan.to.target, switched: true },
      });
    });
    // A pool target keeps refusing the key, as a source does after `move complete`: an
    // application that resolved during the switch would otherwise write rows there nobody reads
    // (and that refuse the next move in). Its next tenant of the key lifts it (the pool's prepare).
    if (plan.to.model === 'pool') {
      const back = switchFenceRecordFor({ ...plan, from: plan.to, to: plan.from });
      await deps.fleet.withTransaction(plan.to.shard, plan.to.database, (c) =>
        fenceSwitchedKey(c, plan.to.schema, deps.config, { key: plan.key, tenant: slug, livesAt: back.livesAt }),
      );
    }
    // The tenant lives at the source again: its own role's sessions in the abandoned target end
    // (as move complete ends them at a source). A reader left there held the target's tables, so
    // lifting its fence and removing it waited lock_timeout and failed the rollback after the
    // catalog had switched back.
    const role = tenantRole({ slug, model: plan.to.model });
    // Best effort: one not ended is waited for by the lift and the removal, as before.
    if (role) await deps.fleet.withClient(plan.to.shard, ADMIN_DATABASE, (c) => endRoleSessions(c, role, plan.to.database)).catch(() => 0);
  } finally {
    await fence.lift();
    await rec.update({ fence: { ...fence.record, liftedAt: new Date().toISOString() } }).catch(() => undefined);
  }
  await faultPoint('move-rollback.before-remove');
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
  return {
    tenant: slug,
    move: open.id,
    at: plan.from,
    removed: plan.to,
    wasSwitched: true,
    cleaned,
    names: namesAfter(deps.config, slug, plan.from, plan.to),
    ...(sourceVersion !== before ? { versions: { source: sourceVersion, before } } : {}),
  };
}

/**
 * The version the source is at: `migrate up` migrates the target, which the catalog names after
 * the switch, and not the source it left (a pool source only with the pool's other tenants). A
 * rollback that kept the catalog's version said the tenant was at a version its placement is not
 * (found: 0004 in `tenant show`, `migrate status` reading 0003 pending, the application back on
 * the older tables); the catalog says what the source has, and the report how to catch up.
 */
async function versionAt(deps: RecoverDeps, end: MoveEnd): Promise<string | null> {
  const applied = await deps.fleet.withClient(end.shard, end.database, (c) => readApplied(c, [end.schema]));
  return versionOf(applied.map((a) => a.name));
}
