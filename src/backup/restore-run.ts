import { withArchiveInUse } from './archive-in-use.js';
import { randomBytes } from 'node:crypto';
import { insertTenant } from '../catalog/tenants.js';
import { recordEvent } from '../catalog/events.js';
import { UsageError } from '../errors.js';
import { runsInOneTransaction } from '../migrate/apply-target.js';
import { runTenantOperation, type OperationRun } from '../operations/tenant-operation.js';
import { drivers, type PlacedTenant } from '../placement/drivers.js';
import { placementFor } from '../placement/drivers.js';
import { targetId } from '../placement/naming.js';
import { perAttempt } from '../placement/placement.js';
import { assertSlug } from '../placement/slug.js';
import { freshKey } from '../catalog/fresh-key.js';
import { assertIntact, openArchive, type OpenArchive } from './archive.js';
import { archiveDataKey } from './archive-key.js';
import { assertManifestMac } from './manifest-mac.js';
import { filesAtVersion, restoreDestination } from './restore-plan.js';
import { placementRecord } from './restore-record.js';
import { poolLoadPlan } from './restore-pool-version.js';
import {
  hangAfterCommit,
  load,
  removeLoaded,
  undoFresh,
  type LoadHow,
  type RestoreDeps,
  type RestoreOptions,
  type RestoreResult,
} from './restore.js';
import { applyLimitsTo } from '../limits/apply.js';
import { failed } from './restore-failed.js';
import { replaceTenant } from './restore-replace.js';

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
  // The archive stays whole while it is read: `backup prune` keeps it (archive-in-use.ts).
  return withArchiveInUse(deps.db, o.backup, async () => restoreArchive(deps, await openArchive(deps.config, o.backup), o));
}

/**
 * restoreBackup of an open archive: a stored one, or a live source (restore --at streams the
 * tenant from its scratch cluster, src/pitr/scratch-source.ts), whose stored-file and manifest
 * checks do not apply (it has no stored bytes; its manifest was made in this process).
 */
export async function restoreArchive(deps: RestoreDeps, a: OpenArchive, o: Omit<RestoreOptions, 'backup'>): Promise<RestoreResult> {
  const m = a.manifest;
  const slug = assertSlug(o.as ?? m.tenant.slug);
  if (o.replace && (o.model || o.shard)) {
    throw new UsageError(
      'USAGE',
      '--replace restores in place: --model and --shard do not apply',
      'drop them, or restore as a new tenant with --as',
    );
  }
  // An in-place restore puts a tenant back as its backup had it; another tenant's backup over it
  // would hand it someone else's data (and skip the residency a new placement is checked for).
  if (o.replace && o.as && o.as !== m.tenant.slug) {
    throw new UsageError(
      'USAGE',
      `backup ${a.id} is of tenant "${m.tenant.slug}": --replace restores a backup over its own tenant only, not over "${o.as}"`,
      `restore a backup of "${o.as}" with --replace, or this one beside its tenant as a new one: --as <new-slug>`,
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
  if (!a.live) await assertIntact(a);
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
        o.as && o.as !== m.tenant.slug
          ? `backup ${a.id} is of tenant "${m.tenant.slug}": restore it as a tenant that does not exist yet (--as <new-slug>)`
          : `pass --replace --yes to swap its data for the backup's (a safety backup is taken first), or --as <new-slug> to restore beside it`,
      );
    }
    if (!live && o.replace)
      throw new UsageError('TENANT_NOT_FOUND', `no tenant "${slug}" to replace`, `drop --replace to restore it as a new tenant`);
    if (live && live.status !== 'active' && live.status !== 'suspended') {
      throw new UsageError('TENANT_STATE', `tenant "${slug}" is ${live.status}`, 'only active or suspended tenants can be replaced');
    }
    const how = { atVersion, dataKey: key, oneTransaction, lockWaitMs: o.lockWaitMs };
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
  // Whether the load has committed: after that, a failure (Ctrl-C at the register step, a limit
  // refused, the catalog write) has a whole placement, or the key's rows in a pool, to remove.
  let committed = false;
  try {
    const loaded = await load(deps, a, how, placed, false, op);
    committed = true;
    await hangAfterCommit(op);
    // Its tier's limits before it is registered, as a created tenant gets them.
    await applyLimitsTo(deps, placed, m.tenant.tier);
    await run.step('register');
    await registerRestored(deps, a, dest, placed, base, loaded);
    await op.finish('succeeded', { rows: loaded.rows });
    return {
      ...base,
      status: 'succeeded',
      key,
      rows: loaded.rows,
      foreignKeys: loaded.foreignKeys,
      ...(loaded.foreignKeyCheck ? { foreignKeyCheck: loaded.foreignKeyCheck } : {}),
      durationMs: Date.now() - started,
    };
  } catch (err) {
    // One transaction, not committed: nothing at the placement, except a database model's
    // database and role, made before it (CREATE DATABASE cannot run in a transaction). Step by
    // step, or committed: the placement (a pool: the key's rows) goes whole. Removed here; if that
    // fails, the message says so and the next restore of the tenant does it (the sweep).
    const left = committed ? await removeLoaded(deps, placed) : await undoFresh(deps, placed, how, { keepRole: false });
    const said = left ? 'nothing was registered' : `nothing was registered and what was loaded was removed; ${slug} does not exist`;
    return failed(run, base, started, err, left, said);
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
      details: {
        ...base,
        from: m.tenant.slug,
        key,
        rows: loaded.rows,
        loadedAs: loaded.role,
        foreignKeys: loaded.foreignKeys,
        ...(loaded.foreignKeyCheck ? { foreignKeyCheck: loaded.foreignKeyCheck } : {}),
      },
    });
  });
}
