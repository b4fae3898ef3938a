import { randomBytes } from 'node:crypto';
import { findTenant, insertTenant, updateTenant } from '../catalog/tenants.js';
import type { TenantRow } from '../catalog/tables.js';
import { recordEvent } from '../catalog/events.js';
import { redactText } from '../config/redact.js';
import { TenantctlError, UsageError, errorMessage } from '../errors.js';
import type { TenantResult } from '../fanout/result.js';
import type { MigrationFile } from '../migrate/files.js';
import { runsInOneTransaction } from '../migrate/apply-target.js';
import { withTenantLock } from '../operations/tenant-lock.js';
import { startOperation, type OperationRecord } from '../operations/operation-record.js';
import { drivers, type PlacedTenant } from '../placement/drivers.js';
import { placementFor } from '../placement/drivers.js';
import { targetId } from '../placement/naming.js';
import { MODEL_TRAITS, perAttempt, tenantRole } from '../placement/placement.js';
import { assertSlug } from '../placement/slug.js';
import { freshKey } from '../catalog/fresh-key.js';
import type { ForeignKeyCheck } from '../copy/pool-load.js';
import { assertIntact, openArchive, type OpenArchive } from './archive.js';
import { archiveDataKey } from './archive-key.js';
import { assertManifestMac } from './manifest-mac.js';
import { backupLocked } from './create.js';
import { filesAtVersion, restoreDestination } from './restore-plan.js';
import { sweepTenant } from '../operations/sweep.js';
import { placementRecord } from './restore-record.js';
import type { RestoreDeps } from './types.js';
import { fenceForReplace, replaceFenceFor, type HeldReplaceFence } from './replace-fence.js';
import { dropReplaced, dropWarning, replaceNames, switchCommitted, switchToFresh } from './replace-switch.js';
import { poolLoadPlan } from './restore-pool-version.js';
import { load, type LoadHow } from './restore-load.js';

export interface RestoreOptions {
  backup: string;
  as?: string;
  shard?: string;
  model?: string;
  replace?: boolean;
}

export interface RestoreResult extends TenantResult {
  backup: string;
  key?: string;
  rows?: number;
  /** --replace: the backup taken of the tenant first. */
  safetyBackup?: string;
  replaced?: boolean;
  /** --replace of a schema or database tenant: its role (the names in `target` and the role are the application's, the same as before). */
  role?: string;
  /** --replace: how long the tenant's writes were refused (from the restore's first step to its switch). */
  writesRefusedMs?: number;
  /** --replace: how long the tenant's role could not connect (a database tenant's rename); 0 for a schema tenant. */
  unreachableMs?: number;
  /** --replace: the application's sessions ended at the replaced placement. */
  endedSessions?: number;
  warnings?: string[];
  /** How the restored rows' foreign keys were checked (see ForeignKeyCheck in src/copy/pool-load.ts). */
  foreignKeys?: ForeignKeyCheck;
}

/**
 * Tests of the kill promise: 'restore-hang-after-load' waits to be killed once the rows are loaded
 * and checked: before anything commits (one transaction), or right after the load's transaction
 * committed, before the later migrations (a placement built step by step).
 */
const FAULT = () => process.env.TENANTCTL_INJECT_FAULT;

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
  return withTenantLock(deps.db, slug, { command: deps.command, wait: deps.wait, onWaiting: deps.onWaiting }, async () => {
    const swept = (await sweepTenant(deps, { slug })).map((s) => s.what);
    const live = await findTenant(deps.db, slug);
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
    const r = await (live ? replaceTenant(deps, a, how, live) : restoreNew(deps, a, how, dest!, slug));
    return swept.length ? { ...r, warnings: [...swept, ...(r.warnings ?? [])] } : r;
  });
}

type Dest = ReturnType<typeof restoreDestination>;

async function restoreNew(deps: RestoreDeps, a: OpenArchive, how: LoadHow, dest: Dest, slug: string): Promise<RestoreResult> {
  const started = Date.now();
  const { config, fleet, db } = deps;
  const m = a.manifest;
  const key = slug === m.tenant.slug ? m.tenant.key : await freshKey(config, db, slug);
  const sh = fleet.shard(dest.shard);
  let placement = placementFor(slug, dest.model, dest.shard, { poolDatabase: sh.poolDatabase, tenantDatabase: sh.tenantDatabase });
  // A database tenant's database is made outside any transaction: a fresh name per attempt, so a
  // killed restore leaves nothing in the tenant's way (an empty database to drop at most).
  placement = perAttempt(placement, `__r${randomBytes(3).toString('hex')}`);
  const placed: PlacedTenant = {
    slug,
    key,
    model: dest.model,
    shard: dest.shard,
    database_name: placement.database,
    schema_name: placement.schema,
  };
  await fleet.assertReachable(dest.shard, 'postgres');
  const keyRows = drivers[dest.model].keyRows;
  if (keyRows) {
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
    await poolLoadPlan(fleet, placed, deps.migrations, m, a.id, false);
  } else {
    const { assertNothingThere } = await import('../placement/nothing-there.js');
    await assertNothingThere(fleet, {
      slug,
      model: dest.model,
      shard: dest.shard,
      database: placed.database_name,
      schema: placed.schema_name,
    });
  }
  const op = await startOperation(db, {
    kind: 'restore',
    tenant: slug,
    // Where the fresh placement goes, recorded before anything is made there: a killed restore's
    // leftovers are found by the next one (the sweep, src/operations/sweep/restores.ts).
    args: { backup: a.id, as: slug, model: dest.model, shard: dest.shard, placement: placementRecord(placed) },
  });
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
    await db.transaction().execute(async (tx) => {
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
    await op.finish('succeeded', { rows: loaded.rows });
    return { ...base, status: 'succeeded', key, rows: loaded.rows, foreignKeys: loaded.foreignKeys, durationMs: Date.now() - started };
  } catch (err) {
    // One transaction: nothing committed at the placement, except a database model's database
    // and role, made before it (CREATE DATABASE cannot run in a transaction). Step by step: the
    // placement, committed piece by piece. Removed here; if that fails, the next restore does it.
    const left = await undoFresh(deps, placed, how, { keepRole: false });
    return failed(deps, op, base, started, err, left);
  }
}

async function replaceTenant(deps: RestoreDeps, a: OpenArchive, how: LoadHow, live: TenantRow): Promise<RestoreResult> {
  const started = Date.now();
  const { db, fleet, config } = deps;
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
  if (MODEL_TRAITS[live.model].sharedTables) await poolLoadPlan(fleet, live, deps.migrations, a.manifest, a.id, true);
  // Schema and database tenants load into a fresh placement beside the live one, which takes the
  // live one's names at the switch; a pool tenant's rows are swapped in the load's transaction.
  const { fresh: placed, away } = replaceNames(live);
  const fence = replaceFenceFor(live);
  const version = deps.migrations.at(-1)?.id ?? null;
  const op = await startOperation(db, {
    kind: 'restore',
    tenant: live.slug,
    // Recorded before anything is made or fenced: a killed replace is finished or undone by the next restore's sweep.
    args: { backup: a.id, replace: true, placement: placementRecord(placed), replaced: placementRecord(live), away, fence, version },
  });
  // From the first step to the switch the tenant's writes are refused: one made meanwhile would
  // be missing from the safety backup and dropped with the replaced placement.
  let held: HeldReplaceFence;
  try {
    held = await fenceForReplace(fleet, config, fence);
  } catch (err) {
    return failed(deps, op, base, started, err);
  }
  let safety: Awaited<ReturnType<typeof backupLocked>>;
  try {
    // The state being replaced, kept: a mistaken restore can itself be undone.
    safety = await backupLocked(deps, live.slug);
    if (safety.status !== 'succeeded') {
      throw new TenantctlError(
        'RESTORE_FAILED',
        `the safety backup of ${live.slug} failed (${safety.error?.message ?? safety.reason}); nothing was changed`,
      );
    }
  } catch (err) {
    await held.lift();
    return failed(deps, op, base, started, err);
  }
  await op.phase('safety backup', { safetyBackup: safety.backup });
  let switched = false;
  try {
    const loaded = await load(deps, a, how, placed, true, op);
    await hangAfterCommit(op);
    const sw = await switchToFresh(deps, live, placed, away);
    switched = true;
    const writesRefusedMs = Date.now() - held.since;
    // A pool's fence goes; a trigger fence stays on the replaced placement until it is dropped.
    await held.lift();
    const times = { writesRefusedMs, ...(away ? { unreachableMs: sw.unreachableMs, endedSessions: sw.endedSessions } : {}) };
    await db.transaction().execute(async (tx) => {
      // A pool keeps its own version (the load never migrates it); a fresh placement is at head.
      await updateTenant(tx, live.slug, { schema_version: loaded.version === undefined ? version : loaded.version });
      await recordEvent(tx, {
        command: deps.command,
        action: 'restored in place',
        result: 'ok',
        tenant: live.slug,
        details: {
          ...base,
          safetyBackup: safety.backup,
          rows: loaded.rows,
          loadedAs: loaded.role,
          foreignKeys: loaded.foreignKeys,
          ...times,
        },
      });
    });
    if (FAULT() === 'restore-hang-after-switch') {
      await op.phase('switched');
      await new Promise(() => setInterval(() => {}, 1000));
    }
    const warnings = [...sw.warnings];
    // The replaced placement is no longer the tenant's: fenced, its sessions ended, dropped now.
    if (away) await dropReplaced(deps, live, away).catch((err) => warnings.push(dropWarning(live, away, err)));
    await op.finish('succeeded', { rows: loaded.rows, ...times });
    return {
      ...base,
      status: 'succeeded',
      key: live.key,
      rows: loaded.rows,
      safetyBackup: safety.backup,
      replaced: true,
      foreignKeys: loaded.foreignKeys,
      ...times,
      warnings,
      durationMs: Date.now() - started,
    };
  } catch (err) {
    if (switched || (await switchCommitted(deps, live, away))) {
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
    const left = await undoFresh(deps, placed, how, { keepRole: true });
    await held.lift().catch(() => undefined);
    return { ...(await failed(deps, op, base, started, err, left)), safetyBackup: safety.backup };
  }
}

/**
 * After a failed load: remove what it made outside a transaction that rolled back (see
 * `undoCreate`); a placement built step by step goes whole, the tenant's role kept when it is a
 * live tenant's. Returns why it could not be removed, or undefined: what is left stays recorded in
 * the operation row for the next restore of the tenant (the sweep, src/operations/sweep/restores.ts).
 */
async function undoFresh(deps: RestoreDeps, p: PlacedTenant, how: LoadHow, o: { keepRole: boolean }): Promise<string | undefined> {
  const { fleet, config } = deps;
  const driver = drivers[p.model];
  try {
    if (how.oneTransaction || MODEL_TRAITS[p.model].sharedTables) await driver.undoCreate(fleet, config, p, o);
    else if (o.keepRole) await driver.removeKeepingRole(fleet, config, p, { roleStaysInDatabase: true });
    else await driver.remove(fleet, config, p);
    return undefined;
  } catch (err) {
    return redactText(errorMessage(err));
  }
}

/** Tests' kill point: the placement is committed, the catalog not yet written. */
async function hangAfterCommit(op: OperationRecord): Promise<void> {
  if (FAULT() !== 'restore-hang-after-commit') return;
  await op.phase('committed');
  await new Promise(() => setInterval(() => {}, 1000));
}

async function failed(
  deps: RestoreDeps,
  op: OperationRecord,
  base: { tenant: string; backup: string; model: string; region: string; shard: string; target: string },
  started: number,
  err: unknown,
  leftover?: string,
): Promise<RestoreResult> {
  let message = redactText(errorMessage(err));
  if (leftover === undefined) await op.finish('failed', { error: message }).catch(() => undefined);
  else {
    // Its record stays running: the next restore of the tenant removes the placement (the sweep, src/operations/sweep/restores.ts).
    message += `; what it made could not be removed yet (${leftover}): the next restore of ${base.tenant} removes it`;
    await op.phase('failed', { error: message }).catch(() => undefined);
  }
  await recordEvent(deps.db, {
    command: deps.command,
    action: 'restore failed',
    result: 'failed',
    tenant: base.tenant,
    details: { backup: base.backup, error: message },
  }).catch(() => undefined);
  if (err instanceof UsageError) throw err;
  return {
    ...base,
    status: 'failed',
    durationMs: Date.now() - started,
    error: { code: err instanceof TenantctlError ? err.code : 'RESTORE_FAILED', message },
  };
}
export type { RestoreDeps } from './types.js';
