import { updateTenant } from '../catalog/tenants.js';
import type { TenantRow } from '../catalog/tables.js';
import { recordEvent } from '../catalog/events.js';
import { redactText } from '../config/redact.js';
import { TenantctlError, errorMessage } from '../errors.js';
import type { OperationRun } from '../operations/tenant-operation.js';
import type { PlacedTenant } from '../placement/drivers.js';
import { tenantResultBase } from '../placement/naming.js';
import { tenantRole } from '../placement/placement.js';
import { beforeReplace } from './restore-load.js';
import type { OpenArchive } from './archive.js';
import { backupLocked } from './create.js';
import { placementRecord } from './restore-record.js';
import { fenceForReplace, replaceFenceFor, type HeldReplaceFence } from './replace-fence.js';
import { raiseSequences, sequenceValues } from '../copy/sequences.js';
import { dropReplaced, dropWarning, replaceNames, switchCommitted, switchToFresh } from './replace-switch.js';
import { faultAction, faultPoint } from '../operations/fault-points.js';
import { hangAfterCommit, load, undoFresh, type Loaded, type LoadHow, type RestoreDeps, type RestoreResult } from './restore.js';
import { applyLimitsTo } from '../limits/apply.js';
import { failed } from './restore-failed.js';

/*
 * The in-place path of a restore (`--replace`): fence the live tenant, take the safety backup, load
 * a fresh placement, switch to it, record; split from restore-run.ts, which runs the entry and the
 * new-tenant path. Every step undoes itself on failure, as restore-run.ts describes.
 */

export async function replaceTenant(
  deps: RestoreDeps,
  run: OperationRun,
  a: OpenArchive,
  how: LoadHow,
  live: TenantRow,
): Promise<RestoreResult> {
  const started = Date.now();
  const role = tenantRole(live);
  const base = {
    // The target is the names the application uses: the same after the switch (replace-switch.ts).
    ...tenantResultBase(live),
    ...(role ? { role } : {}),
    backup: a.id,
  };
  await beforeReplace(deps, live, a);
  // Schema and database tenants load into a fresh placement beside the live one, which takes the
  // live one's names at the switch; a pool tenant's rows are swapped in the load's transaction.
  const { fresh: placed, away } = replaceNames(live);
  const fence = replaceFenceFor(live);
  const version = deps.migrations.at(-1)?.id ?? null;
  // Recorded before anything is made or fenced: a killed replace is finished or undone by the next restore's sweep.
  const op = await run.record({
    backup: a.id,
    replace: true,
    placement: placementRecord(placed),
    replaced: placementRecord(live),
    away,
    fence,
    version,
  });
  const untouched = `the fence was lifted: ${live.slug} keeps its data as it was`;
  const guarded = await fenceAndSafetyBackup(deps, run, live, fence);
  if ('err' in guarded) return failed(run, base, started, guarded.err, undefined, untouched);
  const { held, safety } = guarded;
  run.did(`safety backup ${safety.backup} written (kept)`);
  const r: Replace = { deps, run, op, a, how, live, placed, away, version, base, held, safetyBackup: safety.backup, started };
  // The load committed the fresh placement: undoing it is removing it whole (not a rolled-back create).
  const progress = { committed: false, switched: false };
  try {
    return await loadAndSwitch(r, progress);
  } catch (err) {
    if (progress.switched || (await switchCommitted(deps, live, away))) {
      // The restored data is the tenant's already; the record stays running for the next restore to finish.
      const message = `${redactText(errorMessage(err))}; the switch had committed: the next restore of ${live.slug} finishes it`;
      await op.phase('switched', { error: message }).catch(() => undefined);
      return {
        ...base,
        status: 'failed',
        safetyBackup: safety.backup,
        durationMs: Date.now() - started,
        error: { code: 'RESTORE_FAILED', message },
      };
    }
    const left = await undoFresh(deps, placed, progress.committed ? { ...how, oneTransaction: false } : how, { keepRole: true });
    await held.lift().catch(() => undefined);
    return { ...(await failed(run, base, started, err, left, `${untouched}; what was loaded was removed`)), safetyBackup: safety.backup };
  }
}

type Safety = Awaited<ReturnType<typeof backupLocked>>;

/**
 * From the first step to the switch the tenant's writes are refused: one made meanwhile would be
 * missing from the safety backup and dropped with the replaced placement. The safety backup keeps
 * the state being replaced: a mistaken restore can itself be undone. On failure the fence is lifted.
 */
async function fenceAndSafetyBackup(
  deps: RestoreDeps,
  run: OperationRun,
  live: TenantRow,
  fence: ReturnType<typeof replaceFenceFor>,
): Promise<{ held: HeldReplaceFence; safety: Safety } | { err: unknown }> {
  let held: HeldReplaceFence;
  try {
    held = await fenceForReplace(deps.fleet, deps.config, fence);
  } catch (err) {
    return { err };
  }
  try {
    await run.step('fenced');
    const safety = await backupLocked({ ...deps, signal: run.signal }, live);
    if (safety.status !== 'succeeded') {
      throw new TenantctlError(
        'RESTORE_FAILED',
        `the safety backup of ${live.slug} failed (${safety.error?.message ?? safety.reason}); nothing was changed`,
      );
    }
    return { held, safety };
  } catch (err) {
    await held.lift();
    return { err };
  }
}

/** What an in-place restore carries from its fence and safety backup to its switch. */
interface Replace {
  deps: RestoreDeps;
  run: OperationRun;
  op: Awaited<ReturnType<OperationRun['record']>>;
  a: OpenArchive;
  how: LoadHow;
  live: TenantRow;
  placed: PlacedTenant;
  away: ReturnType<typeof replaceNames>['away'];
  version: string | null;
  base: { tenant: string; backup: string; model: TenantRow['model']; region: string; shard: string; target: string; role?: string };
  held: HeldReplaceFence;
  safetyBackup: Safety['backup'];
  started: number;
}

/**
 * Load the backup into the fresh placement, switch it in, record it and drop the replaced one.
 * `progress` tells the caller's undo how far it got: committed (the load), switched.
 */
async function loadAndSwitch(r: Replace, progress: { committed: boolean; switched: boolean }): Promise<RestoreResult> {
  const { deps, run, op, live, placed, away, held, base } = r;
  await run.step('safety-backup', { safetyBackup: r.safetyBackup });
  const loaded = await load({ ...deps, signal: run.signal }, r.a, r.how, placed, true, op);
  progress.committed = true;
  // A tenant in shared tables had its rows swapped in the load's own transaction: that commit was
  // its switch, so nothing can be undone from here (its old rows are in the safety backup only),
  // and the restore finishes; a Ctrl-C now does not stop it.
  if (!away) progress.switched = true;
  await hangAfterCommit(op);
  // The tier's limits on the fresh placement before it takes the tenant's names (a database
  // tenant's fresh database has none of the live one's); a refusal removes it, nothing switched.
  await applyLimitsTo(deps, placed, live.tier);
  // The ids the application was given since the backup (its rows are in the safety backup) are
  // not given again: the fresh placement's sequences past the replaced one's (fenced: final).
  if (away) await carrySequences(deps.fleet, live, placed);
  // The last clean point of a placement of its own: from the switch on, the restore finishes.
  if (away) await run.step('switch');
  else await op.phase('switch');
  const sw = await switchToFresh(deps, live, placed, away);
  progress.switched = true;
  const writesRefusedMs = Date.now() - held.since;
  // A pool's fence goes; a trigger fence stays on the replaced placement until it is dropped.
  await held.lift();
  const times = { writesRefusedMs, ...(away ? { unreachableMs: sw.unreachableMs, endedSessions: sw.endedSessions } : {}) };
  await recordReplaced(r, loaded, times);
  if (faultAction('restore.switched')) await op.phase('switched');
  await faultPoint('restore.switched');
  const warnings = [...sw.warnings];
  // The replaced placement is no longer the tenant's: fenced, its sessions ended, dropped now.
  if (away) await dropReplaced(deps, live, away).catch((err) => warnings.push(dropWarning(live, away, err)));
  await op.finish('succeeded', { rows: loaded.rows, ...times });
  return {
    ...base,
    status: 'succeeded',
    key: live.key,
    rows: loaded.rows,
    safetyBackup: r.safetyBackup,
    replaced: true,
    foreignKeys: loaded.foreignKeys,
    ...(loaded.foreignKeyCheck ? { foreignKeyCheck: loaded.foreignKeyCheck } : {}),
    ...times,
    warnings,
    durationMs: Date.now() - r.started,
  };
}

/** The replaced tenant's version and its event, in one catalog transaction. */
async function recordReplaced(r: Replace, loaded: Loaded, times: Record<string, number>): Promise<void> {
  const { deps, live } = r;
  await deps.db.transaction().execute(async (tx) => {
    // A pool keeps its own version (the load never migrates it); a fresh placement is at head.
    await updateTenant(tx, live.slug, { schema_version: loaded.version === undefined ? r.version : loaded.version });
    await recordEvent(tx, {
      command: deps.command,
      action: 'restored in place',
      result: 'ok',
      tenant: live.slug,
      details: {
        ...r.base,
        safetyBackup: r.safetyBackup,
        rows: loaded.rows,
        loadedAs: loaded.role,
        foreignKeys: loaded.foreignKeys,
        ...(loaded.foreignKeyCheck ? { foreignKeyCheck: loaded.foreignKeyCheck } : {}),
        ...times,
      },
    });
  });
}

/** The fresh placement's sequences past what the live one handed out (src/copy/sequences.ts). */
async function carrySequences(fleet: RestoreDeps['fleet'], live: TenantRow, fresh: PlacedTenant): Promise<void> {
  const handedOut = await fleet.withClient(live.shard, live.database_name, (c) => sequenceValues(c, live.schema_name));
  await fleet.withClient(fresh.shard, fresh.database_name, (c) => raiseSequences(c, fresh.schema_name, handedOut));
}
