import { FENCE_WAIT_MS } from '../move/fence.js';
import { openMove } from '../move/record.js';
import type { LifecycleDeps } from '../operations/command-deps.js';
import { updateTenant } from '../catalog/tenants.js';
import type { TenantRow, TenantStatus } from '../catalog/tables.js';
import { recordEvent } from '../catalog/events.js';
import { TenantctlError, UsageError } from '../errors.js';
import { drivers } from '../placement/drivers.js';
import { ADMIN_DATABASE } from '../placement/databases.js';
import { runTenantOperation } from '../operations/tenant-operation.js';
import { faultPoint } from '../operations/fault-points.js';
import { sweepRecords } from '../operations/sweep.js';

/** The status detail of a tenant whose delete cut its access before the final backup. */
export const SUSPENDED_FOR_DELETE =
  'access cut by tenant delete before its final backup (run the delete again to finish it, or tenant resume)';

export interface SuspendOutcome {
  tenant: TenantRow;
  /** False: it already was (a cron re-run); the access state was still re-applied. */
  changed: boolean;
  /** Sessions of the tenant's own role ended by a suspend (null: the model has none of its own). */
  sessionsEnded: number | null;
}

/**
 * Suspend or resume a tenant: its application can neither read nor write while suspended, in
 * every model (the placement driver's `setSuspended`: a pool tenant's rows refused to the
 * serving role; a tenant role's LOGIN off and its sessions ended). The catalog status tells
 * later runs (migrations still run on suspended tenants so that they never drift). Suspending a
 * suspended tenant or resuming an active one changes nothing and says so, but re-applies the
 * access state first, so a run killed between the shard and the catalog converges.
 */
export async function setSuspended(deps: LifecycleDeps, slug: string, suspend: boolean): Promise<SuspendOutcome> {
  const spec = { kind: suspend ? 'suspend' : 'resume', slug, sweep: () => sweepRecords(deps, slug), record: {} } as const;
  return runTenantOperation(deps, spec, async (run) => {
    const t = run.tenant!;
    const to = suspend ? 'suspended' : 'active';
    if (t.status !== 'active' && t.status !== 'suspended') {
      throw new UsageError(
        'TENANT_STATE',
        `tenant "${slug}" is ${t.status}, not active or suspended`,
        `${settleFirst(slug, t.status)}; then ${suspend ? 'suspend' : 'resume'} it`,
      );
    }
    let sessionsEnded = await drivers[t.model].setSuspended(deps.fleet, deps.config, t, suspend);
    // A move switched and not completed keeps the old placement, readable through its URL and
    // where a rollback returns: it follows the tenant's access too. Left out, a suspended tenant's
    // old role kept LOGIN, and a resumed one's application on its old URL was refused as
    // "suspended" (not told it had moved) until move complete.
    const open = await openMove(deps.db, slug);
    if (open?.status === 'switched') {
      const from = open.args.plan.from;
      const source = { slug, key: t.key, model: from.model, shard: from.shard, database_name: from.database, schema_name: from.schema };
      const ended = await drivers[from.model].setSuspended(deps.fleet, deps.config, source, suspend);
      if (ended !== null) sessionsEnded = (sessionsEnded ?? 0) + ended;
    }
    if (t.status === to) return { tenant: t, changed: false, sessionsEnded };
    await deps.db.transaction().execute(async (tx) => {
      // A resume also ends a killed delete's suspension (SUSPENDED_FOR_DELETE): its detail goes.
      await updateTenant(tx, slug, { status: to, status_detail: null });
      await recordEvent(tx, {
        command: deps.command,
        action: suspend ? 'suspended' : 'resumed',
        result: 'ok',
        tenant: slug,
        ...(sessionsEnded ? { details: { sessionsEnded } } : {}),
      });
    });
    return { tenant: { ...t, status: to }, changed: true, sessionsEnded };
  });
}

/** What settles a tenant caught between states (a command killed half-way), so that it can be suspended or resumed. */
function settleFirst(slug: string, status: TenantStatus): string {
  switch (status) {
    case 'moving':
      return `a move of it did not finish (tenantctl move status ${slug} says where it stopped): run that move again to finish it, or tenantctl move rollback ${slug} --yes to undo it`;
    case 'provisioning':
    case 'failed':
      return `its create did not finish: run tenantctl tenant create ${slug} again, or tenantctl tenant delete ${slug} --yes`;
    case 'deleting':
      return `it is being deleted: run tenantctl tenant delete ${slug} --yes again to finish`;
    default:
      return 'only active or suspended tenants can be suspended or resumed';
  }
}

/**
 * Delete a tenant: mark it deleting, remove its placement (or its pool rows), then remove its
 * catalog row and record the event. Killed half-way, it is still in the catalog as deleting and
 * running delete again finishes it.
 */
export async function deleteTenant(
  deps: LifecycleDeps,
  slug: string,
  opts: { skipBackup?: boolean } = {},
): Promise<TenantRow & { finalBackup?: string; swept?: string[] }> {
  // The engine runs the one sweep first: what killed operations of it left goes with it.
  return runTenantOperation(deps, { kind: 'delete', slug, record: {} }, async (run) => {
    // Read under the lock: another command may have changed or deleted it meanwhile.
    const t = run.tenant!;
    const swept = run.swept;
    // A shard that cannot be reached: exit 2 with nothing changed (not a tenant stuck `deleting`).
    await deps.fleet.assertReachable(t.shard, ADMIN_DATABASE);
    // A move switched and not completed keeps the tenant's old placement, with its data, to roll
    // back to: the delete would leave it behind, unrecorded. Settled first, nothing changed.
    const open = await openMove(deps.db, slug);
    if (open?.status === 'switched') {
      throw new UsageError(
        'TENANT_STATE',
        `tenant "${slug}" has a move switched but not completed (move ${open.id}): its old placement on shard ${open.args.plan.from.shard} still holds its data, which a delete would leave behind`,
        `tenantctl move complete ${slug} --yes (drops the old placement), or tenantctl move rollback ${slug} --yes; then delete it`,
      );
    }
    // The application's access is cut first (the driver's suspend), so no write it sees
    // committed lands after the final backup's snapshot and is deleted unsaved. The catalog says
    // so first: a delete killed from here leaves the tenant `suspended` (what its application
    // meets), not `active` with its access cut; a re-run finishes the delete, `tenant resume`
    // gives the access back to a tenant one gave up deleting.
    const access = t.status === 'active';
    // Nothing deleted (the cut or the final backup failed): the access back, then the catalog.
    const giveBack = async () => {
      await drivers[t.model].setSuspended(deps.fleet, deps.config, t, false);
      await updateTenant(deps.db, slug, { status: 'active', status_detail: null });
    };
    // The pool's fence policies before anything changes (DDL on the shared tables, serialised and
    // retried on its own; a long transaction on them fails the delete here, nothing changed): the
    // removal then fences the deleted key with a row in its transaction.
    const at = { shard: t.shard, database: t.database_name, schema: t.schema_name };
    await drivers[t.model].prepareFence(deps.fleet, deps.config, at, FENCE_WAIT_MS);
    // A final backup first (unless --skip-backup): if it fails, nothing is deleted.
    let finalBackup: string | undefined;
    try {
      if (access) {
        await updateTenant(deps.db, slug, { status: 'suspended', status_detail: SUSPENDED_FOR_DELETE });
        await drivers[t.model].setSuspended(deps.fleet, deps.config, t, true);
      }
      finalBackup = opts.skipBackup ? undefined : await takeFinalBackup(deps, t);
    } catch (err) {
      if (access) await giveBack();
      throw err;
    }
    if (finalBackup) run.did(`final backup ${finalBackup} written`);
    await run.step('backed-up');
    // From here it finishes: a tenant marked deleting is only ever deleted (a re-run does it). The
    // detail the cut left ("before its final backup … or tenant resume") is no longer true.
    await updateTenant(deps.db, slug, { status: 'deleting', status_detail: deletingDetail(slug, finalBackup) });
    // `deleted`: a pool keeps refusing the key's writes (its application may still be connected).
    await drivers[t.model].remove(deps.fleet, deps.config, t, { deleted: true });
    await faultPoint('delete.removed');
    await deps.db.transaction().execute(async (tx) => {
      await tx.deleteFrom('tenants').where('slug', '=', slug).execute();
      // Closed with the row's removal: a kill after it leaves no running record of a gone tenant.
      await run.op?.update({ phase: 'done' }, 'succeeded', tx);
      await recordEvent(tx, {
        command: deps.command,
        action: 'deleted',
        result: 'ok',
        tenant: slug,
        details: {
          model: t.model,
          shard: t.shard,
          database: t.database_name,
          schema: t.schema_name,
          key: t.key,
          finalBackup: finalBackup ?? null,
        },
      });
    });
    return { ...t, finalBackup, ...(swept.length ? { swept } : {}) };
  });
}

/** What `tenant show` says of a tenant past its delete's point of no return. */
function deletingDetail(slug: string, finalBackup: string | undefined): string {
  return `${finalBackup ? `final backup ${finalBackup} written` : 'no final backup (--skip-backup, or nothing to back up)'}; only a delete finishes it: tenantctl tenant delete ${slug} --yes`;
}

/** The backup `tenant delete` takes before deleting (under the lock it holds); its id, or none for a tenant with no data yet. */
async function takeFinalBackup(deps: LifecycleDeps, t: TenantRow): Promise<string | undefined> {
  const { backupLocked } = await import('../backup/create.js');
  const slug = t.slug;
  const r = await backupLocked(deps, t);
  if (r.status === 'failed') {
    throw new TenantctlError(
      'BACKUP_FAILED',
      `the final backup of ${slug} failed (${r.error?.message}); nothing was deleted`,
      'fix the backup, or pass --skip-backup to delete without one',
    );
  }
  return r.backup;
}
export type { LifecycleDeps } from '../operations/command-deps.js';
