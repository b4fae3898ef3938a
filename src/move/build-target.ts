import type { TargetBuild } from './types.js';
import type { Config } from '../config/types.js';
import { TenantctlError } from '../errors.js';
import type { Fleet } from '../fleet/fleet.js';
import type { MigrationFile } from '../migrate/files.js';
import { runsInOneTransaction } from '../migrate/apply-target.js';
import { buildPlacement } from '../build/at-files.js';
import { readApplied } from '../migrate/tracking.js';
import { drivers } from '../placement/drivers.js';
import type { CatalogPlacement } from '../placement/placement.js';
import type { CatalogDb } from '../catalog/open.js';
import { findTenant } from '../catalog/tenants.js';
import { applyLimitsTo } from '../limits/apply.js';
import type { MovePlan } from './plan.js';
import type { MoveRecord } from './record.js';

/**
 * Build an exclusive target (schema or database) BEFORE the tenant's writes are fenced (issue 16,
 * item 7): the placement, its role and grants, migrated to exactly the source's applied files
 * (`atVersion`, which need not be a prefix of the folder), committed empty. In one transaction
 * when every file allows, else step by step (a `-- tenantctl:no-transaction` file such as CREATE
 * INDEX CONCURRENTLY runs outside one; item 9), as `buildPlacement` builds any new
 * placement. The fence then covers only the copy, the verification and the switch, however slow
 * the migrations are. Nobody sees the empty placement: the catalog points at the source until the
 * switch. Recorded (`targetCreated`) in the move's operations row BEFORE anything is made, so a
 * failure or a kill from here on leaves a target that the failure path or the next command removes
 * (recover.ts). A pool target needs nothing: preflight prepared it at the source's version.
 *
 * @example
 *   await buildTarget(deps, plan, pre.atVersion, rec) // 'one transaction'
 */
export async function buildTarget(
  deps: { config: Config; fleet: Fleet; db: CatalogDb },
  plan: MovePlan,
  atVersion: MigrationFile[],
  rec: MoveRecord,
): Promise<TargetBuild> {
  return drivers[plan.to.model].moveTarget<TargetBuild>({
    sharedTables: async () => 'shared pool',
    ownPlacement: async () => {
      await rec.update({ targetCreated: true });
      const build = await buildEmptyTarget(deps, plan, atVersion);
      // The tier's limits on the target before anything reaches it: a role made on another shard has
      // none, and settings IN DATABASE and a database's CONNECTION LIMIT are the source database's.
      const tier = (await findTenant(deps.db, plan.tenant))?.tier;
      if (tier !== undefined) await applyLimitsTo(deps, targetPlacement(plan), tier);
      return build;
    },
  });
}

/** The target as a placement of the tenant's. */
function targetPlacement(plan: MovePlan): CatalogPlacement {
  const to = plan.to;
  return { slug: plan.tenant, key: plan.key, model: to.model, shard: to.shard, database_name: to.database, schema_name: to.schema };
}

/**
 * The move's target, empty, at exactly the source's files (every one of them, none after), as
 * every placement is built (src/build/at-files.ts): the offline move builds it before the fence,
 * the online move before its subscription or capture fills it. The caller recorded it first.
 */
async function buildEmptyTarget(deps: { config: Config; fleet: Fleet }, plan: MovePlan, atVersion: MigrationFile[]): Promise<TargetBuild> {
  const to = plan.to;
  const { oneTransaction } = await buildPlacement(targetPlacement(plan), {
    fleet: deps.fleet,
    config: deps.config,
    files: atVersion,
    failure: (o) =>
      new TenantctlError(
        'MOVE_FAILED',
        `building the target ${to.target} at the tenant's version failed: ${o.error?.message ?? 'unknown error'}`,
      ),
  });
  return oneTransaction ? 'one transaction' : 'step by step';
}

/**
 * How `buildTarget` would build the target, for a dry run: read only (the source's applied
 * migrations), undefined when the source cannot be read.
 *
 * @example
 *   await plannedBuild(deps, plan) // 'step by step' (a CREATE INDEX CONCURRENTLY file is applied)
 */
export async function plannedBuild(deps: { fleet: Fleet; migrations: MigrationFile[] }, plan: MovePlan): Promise<TargetBuild | undefined> {
  const from = plan.from;
  return drivers[plan.to.model].moveTarget<TargetBuild | undefined>({
    sharedTables: async () => 'shared pool',
    ownPlacement: async () => {
      const applied = await deps.fleet.withClient(from.shard, from.database, (c) => readApplied(c, [from.schema])).catch(() => undefined);
      if (!applied) return undefined;
      const ids = new Set(applied.map((a) => a.name));
      return (await runsInOneTransaction(deps.migrations.filter((m) => ids.has(m.id)))) ? 'one transaction' : 'step by step';
    },
  });
}
export type { TargetBuild } from './types.js';
