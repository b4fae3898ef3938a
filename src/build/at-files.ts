import type { Config } from '../config/types.js';
import { TenantctlError } from '../errors.js';
import { inTransaction, type Fleet } from '../fleet/fleet.js';
import type { ShardClient } from '../fleet/shard-connections.js';
import { MIGRATION_LOCK_CLASSID } from '../operations/lock-ids.js';
import { drivers, type PlacedTenant } from '../placement/drivers.js';
import { migrateTarget, runsInOneTransaction } from '../migrate/apply-target.js';
import type { MigrationFile } from '../migrate/files.js';
import type { MigrationTarget, TargetOutcome } from '../migrate/target-types.js';
import { ensureTrackingTable } from '../migrate/tracking.js';

export interface BuildOptions {
  fleet: Fleet;
  config: Config;
  /**
   * Exactly these migration files, in this order: the folder for a new tenant, a backup's applied
   * set (from its manifest) for a restore, the source's applied set for a move. Not always a
   * prefix of the folder: a file inserted in the middle later, or deleted, is not in it.
   */
  files: MigrationFile[];
  /** After the placement exists, before it is migrated (inside the transaction when there is one). */
  afterPrepare?(): Promise<void>;
  /** After it is at `files`: the rows go in here (a restore), in ONE transaction, the build's when it has one. */
  load?(c: ShardClient): Promise<void>;
  /** After `files` (and the load): a test's kill point. The build's transaction, when it has one, is still open. */
  afterLoad?(): Promise<void>;
  /** Then brought to these files (a restore: the folder, to head) before the grants. */
  finalFiles?: MigrationFile[];
  /** The error a failed migration becomes (default: PROVISION_FAILED, naming what failed). */
  failure?(o: TargetOutcome): Error;
}

/**
 * Whether `buildPlacement` builds this placement in one transaction: its driver can, and every
 * file it applies may run inside one (a `-- tenantctl:no-transaction` file such as CREATE INDEX
 * CONCURRENTLY may not).
 */
export async function buildsInOneTransaction(t: Pick<PlacedTenant, 'model'>, files: MigrationFile[]): Promise<boolean> {
  return Boolean(drivers[t.model].createInOneTransaction) && (await runsInOneTransaction(files));
}

/**
 * The ONE path from nothing to a loaded placement (tenant create, restore, move, clone): create
 * the tenant's own placement (schema or database) at exactly `files`, load its rows (`load`,
 * wherever they come from: an archive's streams, or nothing when a move copies later), bring it
 * to `finalFiles`, grant. Where the model and files allow, all of it, with the migrations' tracking
 * rows, commits in ONE transaction: a failure or a crash leaves nothing half-made inside the
 * tenant's database. Otherwise step by step (each step idempotent), the load still one
 * transaction. A placement in shared tables is never built here: its pool is migrated by the
 * normal engine (src/copy/pool-load.ts loads into it).
 *
 * @example
 *   await buildPlacement(tenant, { fleet, config, files: atVersion, load: (c) => loadArchive(c), finalFiles: migrations });
 */
export async function buildPlacement(t: PlacedTenant, o: BuildOptions): Promise<{ oneTransaction: boolean }> {
  const { fleet, config } = o;
  const driver = drivers[t.model];
  const target: MigrationTarget = { model: t.model, shard: t.shard, database: t.database_name, schema: t.schema_name };
  const fail =
    o.failure ??
    ((out: TargetOutcome) =>
      // A schema the pool refuses (RLS_UNSAFE: a keyless table, a side door) keeps its code and its
      // fixes: running the same command again fails the same way until the schema or config changes.
      new TenantctlError(
        out.error?.code === 'RLS_UNSAFE' ? 'RLS_UNSAFE' : 'PROVISION_FAILED',
        `migrating the new placement failed: ${out.error?.message ?? 'unknown error'}`,
        out.error?.code === 'RLS_UNSAFE' ? out.error.hint : undefined,
      ));
  const migrate = async (c: ShardClient, files: MigrationFile[], withinTransaction: boolean) => {
    // A tenant's placement is made under its lock (create, move, restore): see tenantLocked.
    const out = await migrateTarget(c, target, files, { config, withinTransaction, tenantLocked: true });
    if (out.status === 'failed') throw fail(out);
  };
  const all = [...o.files, ...(o.finalFiles ?? []).filter((f) => !o.files.includes(f))];
  if (driver.createInOneTransaction && (await runsInOneTransaction(all))) {
    await driver.createInOneTransaction(fleet, config, t, {
      before: (c) => ensureTrackingTable(c, MIGRATION_LOCK_CLASSID),
      inside: async (c) => {
        await o.afterPrepare?.();
        await migrate(c, o.files, true);
        await o.load?.(c);
        if (o.finalFiles) await migrate(c, o.finalFiles, true);
        await o.afterLoad?.();
      },
    });
    return { oneTransaction: true };
  }
  await driver.prepare(fleet, config, t);
  await o.afterPrepare?.();
  await fleet.withClient(t.shard, t.database_name, async (c) => {
    await migrate(c, o.files, false);
    // Each step above committed; nobody sees the placement before the catalog names it. The rows,
    // their checks and the sequences are one transaction.
    if (o.load) await inTransaction(c, () => o.load!(c));
    await o.afterLoad?.();
    if (o.finalFiles) await migrate(c, o.finalFiles, false);
  });
  await driver.finish(fleet, config, t);
  return { oneTransaction: false };
}
