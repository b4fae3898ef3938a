import { randomBytes } from 'node:crypto';
import { insertTenant, updateTenant } from '../catalog/tenants.js';
import type { TenantRow } from '../catalog/tables.js';
import { recordEvent } from '../catalog/events.js';
import { redactText } from '../config/redact.js';
import { TenantctlError, UsageError, errorMessage } from '../errors.js';
import { runsInOneTransaction } from '../migrate/apply-target.js';
import { runTenantOperation, type OperationRun } from '../operations/tenant-operation.js';
import { endsCommand } from '../operations/failure.js';
import { InterruptedError, isInterrupt } from '../operations/interrupt.js';
import { drivers, type PlacedTenant } from '../placement/drivers.js';
import { placementFor } from '../placement/drivers.js';
import { targetId } from '../placement/naming.js';
import { perAttempt, tenantRole } from '../placement/placement.js';
import { beforeReplace } from './restore-load.js';
import { assertSlug } from '../placement/slug.js';
import { freshKey } from '../catalog/fresh-key.js';
import { assertIntact, openArchive, type OpenArchive } from './archive.js';
import { archiveDataKey } from './archive-key.js';
import { assertManifestMac } from './manifest-mac.js';
import { backupLocked } from './create.js';
import { filesAtVersion, restoreDestination } from './restore-plan.js';
import { placementRecord } from './restore-record.js';
import { fenceForReplace, replaceFenceFor, type HeldReplaceFence } from './replace-fence.js';
import { dropReplaced, dropWarning, replaceNames, switchCommitted, switchToFresh } from './replace-switch.js';
import { poolLoadPlan } from './restore-pool-version.js';
import { faultAction, faultPoint } from '../operations/fault-points.js';
import { hangAfterCommit, load, undoFresh, type LoadHow, type RestoreDeps, type RestoreOptions, type RestoreResult } from './restore.js';
import { applyLimitsTo } from '../limits/apply.js';

/*
 * The lifecycle shell of a restore (issue 18): the entry, the new-tenant and in-place paths'
 * record, fence, safety backup, switch and failure handling, run through the tenant-operation
 * engine. The data path (build, load, verify) stays in restore.ts.
 */

/**
 * Restore a backup, as a new tenant (its own slug when it no longer exists, or `as`, with a new
 * key written into every key column; `model` and `shard` place it anywhere its residency allows)
 * or in place (`replace`: a safety backup first, then an atomic swap). The data is loaded at the
 * backup's migration version, checked against the manifest (counts and hashes), then migrated to
 * head (a fresh schema or database placement step by step when a migration runs outside a
 * transaction; a pool tenant to its pool's version, the pool itself never migrated); only then
 * does the catalog change, in one transaction. Bad input is exit 2 before
 * anything changes; a failure leaves the original tenant as it was and registers nothing.
 *
 * @example
 *   await restoreBackup(deps, { backup: 'acme.20261126T225317123Z', as: 'acme-copy', model: 'pool' })
 */
export async function restoreBackup(deps: RestoreDeps, o: RestoreOptions): Promise<RestoreResult> {
  const a = await openArchive(deps.config, o.backup);
  const m = a.manifest;
  const slug = assertSlug(o.as ?? m.tenant.slug);
  if (o.replace && (o.model || o.shard)) {
    throw new UsageError(
      'USAGE',
      '--replace restores in place: --model and --shard do not apply',
      'drop them, or restore as a new tenant with --as',
    );
  }
  if (m.keyType !== deps.config.tenantKey.type) {
    throw new UsageError(
      'BAD_ARCHIVE',
      `backup ${a.id} has ${m.keyType} keys; this fleet uses ${deps.config.tenantKey.type} keys`,
      'restore into a fleet with the same tenantKey.type',
    );
  }
  const atVersion = filesAtVersion(deps.migrations, m, a.id);
  // A migration that must run outside a transaction (CREATE INDEX CONCURRENTLY) makes a fresh
  // schema or database placement be built step by step (see load).
  const oneTransaction = await runsInOneTransaction(deps.migrations);
  const dest = o.replace ? null : restoreDestination(deps.config, m, o);
  // Damage is found before anything is locked or changed (exit 2).
  await assertIntact(a);
  const key = await archiveDataKey(deps.db, a);
  if (key) assertManifestMac(m, key, `backup ${a.id}`);
  // What a killed operation of the tenant left goes first: the engine runs the one sweep.
  return runTenantOperation(deps, { kind: 'restore', slug, tenant: 'optional' }, async (run) => {
    const { swept } = run;
    const live = run.tenant;
    if (live && !o.replace) {
      throw new UsageError(
        'TENANT_EXISTS',
        `tenant "${slug}" exists (${live.status}, ${live.model} on ${live.shard}); restoring over it needs --replace --yes`,
        `pass --replace --yes to swap its data for the backup's (a safety backup is taken first), or --as <new-slug> to restore beside it`,
      );
    }
    if (!live && o.replace)
      throw new UsageError('TENANT_NOT_FOUND', `no tenant "${slug}" to replace`, `drop --replace to restore it as a new tenant`);
    if (live && live.status !== 'active' && live.status !== 'suspended') {
      throw new UsageError('TENANT_STATE', `tenant "${slug}" is ${live.status}`, 'only active or suspended tenants can be replaced');
    }
    const how = { atVersion, dataKey: key, oneTransaction };
    const r = await (live ? replaceTenant(deps, run, a, how, live) : restoreNew(deps, run, a, how, dest!, slug));
    return swept.length ? { ...r, warnings: [...swept, ...(r.warnings ?? [])] } : r;
  });
}

type Dest = ReturnType<typeof restoreDestination>;

async function restoreNew(
  deps: RestoreDeps,
  run: OperationRun,
  a: OpenArchive,
  how: LoadHow,
  dest: Dest,
  slug: string,
): Promise<RestoreResult> {
  const started = Date.now();
  const m = a.manifest;
  const key = slug === m.tenant.slug ? m.tenant.key : await freshKey(deps.config, deps.db, slug);
  const placed = freshPlacement(deps, dest, slug, key);
  await assertRoomFor(deps, a, dest, placed);
  // Where the fresh placement goes, recorded before anything is made there: a killed restore's
  // leftovers are found by the next one (the sweep, src/operations/sweep/restores.ts).
  const op = await run.record({ backup: a.id, as: slug, model: dest.model, shard: dest.shard, placement: placementRecord(placed) });
  const base = {
    tenant: slug,
    model: dest.model,
    region: dest.region,
    shard: dest.shard,
    target: targetId({ shard: dest.shard, database: placed.database_name, schema: placed.schema_name }),
    backup: a.id,
  };
  try {
    const loaded = await load(deps, a, how, placed, false, op);
    await hangAfterCommit(op);
    // Its tier's limits before it is registered, as a created tenant gets them.
    await applyLimitsTo(deps, placed, m.tenant.tier);
    await run.step('register');
    await registerRestored(deps, a, dest, placed, base, loaded);
    await op.finish('succeeded', { rows: loaded.rows });
    return { ...base, status: 'succeeded', key, rows: loaded.rows, foreignKeys: loaded.foreignKeys, durationMs: Date.now() - started };
  } catch (err) {
    // One transaction: nothing committed at the placement, except a database model's database
    // and role, made before it (CREATE DATABASE cannot run in a transaction). Step by step: the
    // placement, committed piece by piece. Removed here; if that fails, the next restore does it.
    const left = await undoFresh(deps, placed, how, { keepRole: false });
    return failed(run, base, started, err, left, `nothing was registered and what was loaded was removed; ${slug} does not exist`);
  }
}

/** Where a restore as a new tenant puts it, named for this attempt. */
function freshPlacement(deps: RestoreDeps, dest: Dest, slug: string, key: string): PlacedTenant {
  const sh = deps.fleet.shard(dest.shard);
  let placement = placementFor(slug, dest.model, dest.shard, { poolDatabase: sh.poolDatabase, tenantDatabase: sh.tenantDatabase });
  // A database tenant's database is made outside any transaction: a fresh name per attempt, so a
  // killed restore leaves nothing in the tenant's way (an empty database to drop at most).
  placement = perAttempt(placement, `__r${randomBytes(3).toString('hex')}`);
  return {
    slug,
    key,
    model: dest.model,
    shard: dest.shard,
    database_name: placement.database,
    schema_name: placement.schema,
  };
}

/**
 * Refuses (exit 2, before anything is recorded or made) a destination already holding the key's
 * rows (a shared placement) or anything at the fresh placement, and a pool whose version the
 * backup cannot be loaded at.
 */
async function assertRoomFor(deps: RestoreDeps, a: OpenArchive, dest: Dest, placed: PlacedTenant): Promise<void> {
  const { config, fleet } = deps;
  const key = placed.key;
  await fleet.assertReachable(dest.shard, 'postgres');
  const keyRows = drivers[dest.model].keyRows;
  if (!keyRows) {
    const { assertNothingThere } = await import('../placement/nothing-there.js');
    await assertNothingThere(fleet, {
      slug: placed.slug,
      model: dest.model,
      shard: dest.shard,
      database: placed.database_name,
      schema: placed.schema_name,
    });
    return;
  }
  const found = await keyRows(fleet, config, {
    shard: placed.shard,
    database_name: placed.database_name,
    schema_name: placed.schema_name,
    key,
  });
  if (found.length) {
    throw new UsageError(
      'KEY_IN_USE',
      `key ${key} still has rows in ${dest.shard}/${placed.database_name}: ${found.map((f) => `${f.table} (${f.rows})`).join(', ')}`,
      'restore with --as <new-slug> (a new key), or remove those rows first',
    );
  }
  // Loaded at the pool's version, never migrating it: refused here when the backup cannot be.
  await poolLoadPlan(fleet, placed, deps.migrations, a.manifest, a.id, false);
}

type Loaded = Awaited<ReturnType<typeof load>>;

/** The restored tenant's row and its event, in one catalog transaction. */
async function registerRestored(
  deps: RestoreDeps,
  a: OpenArchive,
  dest: Dest,
  placed: PlacedTenant,
  base: Record<string, unknown>,
  loaded: Loaded,
): Promise<void> {
  const m = a.manifest;
  const { slug, key } = placed;
  await deps.db.transaction().execute(async (tx) => {
    await insertTenant(tx, {
      slug,
      key,
      name: m.tenant.name,
      tier: m.tenant.tier,
      model: dest.model,
      region: dest.region,
      shard: dest.shard,
      database_name: placed.database_name,
      schema_name: placed.schema_name,
      residency: dest.residency,
      status: 'active',
      status_detail: null,
      // A pool tenant is at its pool's version (never migrated by a restore); a new placement at head.
      schema_version: loaded.version === undefined ? (deps.migrations.at(-1)?.id ?? null) : loaded.version,
    });
    await recordEvent(tx, {
      command: deps.command,
      action: 'restored',
      result: 'ok',
      tenant: slug,
      details: { ...base, from: m.tenant.slug, key, rows: loaded.rows, loadedAs: loaded.role, foreignKeys: loaded.foreignKeys },
    });
  });
}

async function replaceTenant(deps: RestoreDeps, run: OperationRun, a: OpenArchive, how: LoadHow, live: TenantRow): Promise<RestoreResult> {
  const started = Date.now();
  const role = tenantRole(live);
  const base = {
    tenant: live.slug,
    model: live.model,
    region: live.region,
    shard: live.shard,
    // The names the application uses: the same after the switch (replace-switch.ts).
    target: targetId({ shard: live.shard, database: live.database_name, schema: live.schema_name }),
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
  const loaded = await load(deps, r.a, r.how, placed, true, op);
  progress.committed = true;
  await hangAfterCommit(op);
  // The tier's limits on the fresh placement before it takes the tenant's names (a database
  // tenant's fresh database has none of the live one's); a refusal removes it, nothing switched.
  await applyLimitsTo(deps, placed, live.tier);
  // The last clean point: from the switch on, the restore finishes.
  await run.step('switch');
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
        ...times,
      },
    });
  });
}

async function failed(
  run: OperationRun,
  base: { tenant: string; backup: string; model: string; region: string; shard: string; target: string },
  started: number,
  err: unknown,
  leftover: string | undefined,
  undone: string,
): Promise<RestoreResult> {
  let failure = err;
  if (leftover !== undefined) {
    // Its record stays running: the next restore of the tenant removes the placement (the sweep, src/operations/sweep/restores.ts).
    const note = `what it made could not be removed yet (${leftover}): the next restore of ${base.tenant} removes it`;
    if (run.op) run.op.keep = true;
    await run.op?.phase('failed', { error: `${redactText(errorMessage(err))}; ${note}` }).catch(() => undefined);
    undone = `${undone}; ${note}`;
    if (!endsCommand(err))
      failure = new TenantctlError(err instanceof TenantctlError ? err.code : 'RESTORE_FAILED', `${errorMessage(err)}; ${note}`);
  }
  // Ctrl-C: the step it was in is undone; the engine says so, and how to finish.
  if (isInterrupt(err)) throw new InterruptedError(undone);
  const error = await run.fail(failure, 'RESTORE_FAILED', { backup: base.backup });
  return { ...base, status: 'failed', durationMs: Date.now() - started, error };
}
