import { basename } from 'node:path';
import { UsageError } from '../errors.js';
import type { Fleet } from '../fleet/fleet.js';
import type { MigrationFile } from '../migrate/files.js';
import { runsInOneTransaction } from '../migrate/apply-target.js';
import { readApplied, type AppliedRow } from '../migrate/tracking.js';
import type { PlacedTenant } from '../placement/drivers.js';
import { targetId } from '../placement/naming.js';
import { databaseExists } from '../placement/pool/rows.js';
import type { Manifest } from './manifest.js';

/**
 * The version a pool restore loads at (issue 16, item 6). A pool target is shared: a restore
 * loads the tenant's rows at the version the pool is at and never migrates it (that would change
 * every other tenant there, outside any `migrate up` run). Only a pool target that was never
 * migrated (no tenant can be in it) is made and brought to head first, as `tenant create` does.
 */
export interface PoolLoadPlan {
  /** The pool's applied migrations as files, in folder order: the version the rows end at. */
  files: MigrationFile[];
  /** The last of them (the tenant's schema_version afterwards), null when there are none. */
  version: string | null;
  /** The pool target was never migrated: it is prepared and migrated to head first. */
  fresh: boolean;
  /** The backup is older than the pool: its rows go through a staging schema built at the backup's version and migrated to the pool's. */
  staged: boolean;
}

/**
 * Read the pool's version and plan the load (see `planPoolLoad`); refuses before anything changes.
 *
 * @example
 *   (await poolLoadPlan(fleet, placed, migrations, manifest, id)).version // '0003_comments'
 */
export async function poolLoadPlan(
  fleet: Fleet,
  p: PlacedTenant,
  files: MigrationFile[],
  m: Manifest,
  backupId: string,
  replacing: boolean,
): Promise<PoolLoadPlan> {
  const applied = (await databaseExists(fleet, p.shard, p.database_name))
    ? await fleet.withClient(p.shard, p.database_name, (c) => readApplied(c, [p.schema_name]))
    : [];
  return planPoolLoad(files, applied, m, { backupId, pool: p, replacing });
}

/**
 * The load plan for a pool whose tracking table says `applied` (pure but for reading whether a
 * file runs in a transaction). Refused, exit 2, naming both versions and what would make it possible:
 *  - the pool holds a migration the folder does not (or holds changed);
 *  - the backup holds a migration the pool has not applied (newer than the pool): `migrate up`
 *    of the pool first;
 *  - the backup is older, and a file between its version and the pool's (or below it: the staging
 *    schema is built inside the load's transaction) must run outside a transaction.
 */
export async function planPoolLoad(
  files: MigrationFile[],
  applied: Pick<AppliedRow, 'name' | 'checksum'>[],
  m: Manifest,
  o: { backupId: string; pool: PlacedTenant; replacing: boolean },
): Promise<PoolLoadPlan> {
  const target = targetId({ shard: o.pool.shard, database: o.pool.database_name, schema: o.pool.schema_name });
  // A pool never migrated holds no tenant: it is made at head, as tenant create makes one.
  const fresh = applied.length === 0 && !o.replacing;
  const byId = new Map(files.map((f) => [f.id, f]));
  const unknown = applied.filter((a) => byId.get(a.name)?.checksum !== a.checksum).map((a) => a.name);
  if (unknown.length) {
    throw new UsageError(
      'MIGRATION_FILES',
      `the pool ${target} is at migrations this folder does not hold (or holds changed): ${unknown.join(', ')}; nothing was changed`,
      'run the restore from a checkout with the migrations the pool has',
    );
  }
  const have = new Set(fresh ? files.map((f) => f.id) : applied.map((a) => a.name));
  const poolFiles = files.filter((f) => have.has(f.id));
  const version = poolFiles.at(-1)?.id ?? null;
  const backupVersion = m.migrations.version ?? '(none)';
  const lacking = m.migrations.applied.map((a) => a.id).filter((id) => !have.has(id));
  if (lacking.length) {
    throw new UsageError(
      'POOL_VERSION',
      `backup ${o.backupId} is at migration version ${backupVersion} and the pool ${target} is at ${version ?? '(none)'}, ` +
        `which lacks ${lacking.join(', ')}: a pool restore loads at the pool's version and never migrates the pool (its other tenants share it); nothing was changed`,
      `bring the pool to head first: tenantctl migrate up --shard ${o.pool.shard} --model pool (it migrates every tenant of that pool, as a recorded run), then restore again`,
    );
  }
  const staged = have.size !== m.migrations.applied.length;
  if (staged) {
    // The staging schema is built and migrated inside the load's one transaction: every file of the pool's version runs there.
    for (const f of poolFiles) {
      if (await runsInOneTransaction([f])) continue;
      throw new UsageError(
        'MIGRATION_FILES',
        `backup ${o.backupId} is at migration version ${backupVersion} and the pool ${target} ${fresh ? 'will be' : 'is'} at ${version}: ` +
          `a pool restore then stages the rows in a schema built and migrated to the pool's version inside its one transaction, and ${basename(f.file)} runs outside a transaction (-- tenantctl:no-transaction); nothing was changed`,
        `restore it as a schema or database tenant (--as <new-slug> --model schema), which is migrated step by step, or restore a backup taken at the pool's version ${version}`,
      );
    }
  }
  return { files: poolFiles, version, fresh, staged };
}
