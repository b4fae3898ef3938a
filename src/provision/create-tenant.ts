import { randomUUID } from 'node:crypto';
import type { Config } from '../config/types.js';
import type { CatalogDb } from '../catalog/open.js';
import { findTenant, insertTenant, nextBigintKey, tenantCountsByShard, updateTenant } from '../catalog/tenants.js';
import type { TenantRow } from '../catalog/tables.js';
import { recordEvent } from '../catalog/events.js';
import type { Fleet } from '../fleet/fleet.js';
import type { TenantResult } from '../fanout/result.js';
import { redactText } from '../config/redact.js';
import { TenantctlError, UsageError, errorMessage } from '../errors.js';
import { drivers } from '../placement/drivers.js';
import { ADMIN_DATABASE } from '../placement/databases.js';
import { targetId } from '../placement/naming.js';
import type { MigrationFile } from '../migrate/files.js';
import { migrateTarget } from '../migrate/apply-target.js';
import { planTenant, type CreateTenantInput } from './plan.js';

export interface ProvisionDeps {
  config: Config;
  db: CatalogDb;
  fleet: Fleet;
  migrations: MigrationFile[];
  command?: string;
  /**
   * Fault injection for tests of the rollback and re-run promises: 'prepared' or 'migrated'
   * throws after that step; 'hang-after-prepared' waits forever (to be killed). Read from
   * TENANTCTL_INJECT_FAULT when not given.
   */
  failAfter?: string;
  /** Tenants per shard for least-loaded placement; bulk runs pass one map and it is kept current. */
  shardLoad?: Map<string, number>;
}

/**
 * Provision one tenant: a catalog row (provisioning), its placement created and migrated to head,
 * then the row turns active, in that order, so the catalog never claims more than exists. A
 * failure undoes what was created and marks the row failed; running it again finishes the job.
 * Bad input throws a UsageError before anything is created; a failure at the shard returns a
 * failed result.
 *
 * @example
 *   const r = await createTenant(deps, { slug: 'acme', tier: 'standard' });
 *   r.status // 'succeeded'
 */
export async function createTenant(deps: ProvisionDeps, input: CreateTenantInput): Promise<TenantResult> {
  const started = Date.now();
  const { config, db, fleet } = deps;
  const command = deps.command ?? 'tenant create';
  let row = await findTenant(db, input.slug);
  let resumed = false;
  if (row && row.status !== 'provisioning' && row.status !== 'failed') {
    throw new UsageError(
      'TENANT_EXISTS',
      `tenant "${input.slug}" already exists (${row.status}, ${row.model} on ${row.shard})`,
      'pick another slug, or see tenantctl tenant show ' + input.slug,
    );
  }
  if (row) {
    resumed = true; // an earlier run was interrupted or failed: finish its placement as recorded
  } else {
    const load = deps.shardLoad ?? (await tenantCountsByShard(db));
    const plan = planTenant(config, input, load);
    // An unreachable shard is refused before the catalog records anything (exit 2).
    await fleet.assertReachable(plan.shard, ADMIN_DATABASE);
    // Bulk runs share one count instead of a GROUP BY over the catalog per tenant.
    if (deps.shardLoad) load.set(plan.shard, (load.get(plan.shard) ?? 0) + 1);
    const key = plan.key ?? (await freshKey(config, db, plan.slug));
    try {
      row = await insertTenant(db, {
        slug: plan.slug,
        key,
        name: plan.name,
        tier: plan.tier,
        model: plan.model,
        region: plan.region,
        shard: plan.shard,
        database_name: plan.placement.database,
        schema_name: plan.placement.schema,
        residency: plan.residency,
        status: 'provisioning',
        status_detail: null,
        schema_version: null,
      });
    } catch (err) {
      if ((err as { code?: string }).code === '23505') {
        throw new UsageError('TENANT_EXISTS', `tenant "${plan.slug}" or its key already exists`, 'pick another slug or --key');
      }
      throw err;
    }
  }
  const tenant = row;
  const base = {
    tenant: tenant.slug,
    model: tenant.model,
    region: tenant.region,
    shard: tenant.shard,
    target: targetId({ shard: tenant.shard, database: tenant.database_name, schema: tenant.schema_name }),
  };
  const driver = drivers[tenant.model];
  const fault = deps.failAfter ?? process.env.TENANTCTL_INJECT_FAULT;
  try {
    await driver.prepare(fleet, config, tenant);
    if (fault === 'prepared') throw new Error('injected failure after prepare');
    if (fault === 'hang-after-prepared') await new Promise(() => setInterval(() => {}, 1000));
    const outcome = await fleet.withClient(tenant.shard, tenant.database_name, (c) =>
      migrateTarget(c, { shard: tenant.shard, database: tenant.database_name, schema: tenant.schema_name, model: tenant.model }, deps.migrations, { config }),
    );
    if (outcome.status === 'failed') {
      throw new TenantctlError('PROVISION_FAILED', `migrating the new placement failed: ${outcome.error?.message ?? 'unknown error'}`);
    }
    if (fault === 'migrated') throw new Error('injected failure after migrate');
    await driver.finish(fleet, config, tenant);
    const version = deps.migrations.at(-1)?.id ?? null;
    await db.transaction().execute(async (tx) => {
      await updateTenant(tx, tenant.slug, { status: 'active', status_detail: null, schema_version: version });
      await recordEvent(tx, { command, action: 'provisioned', result: 'ok', tenant: tenant.slug, details: { ...base, resumed } });
    });
    return { ...base, status: 'succeeded', key: tenant.key, resumed, durationMs: Date.now() - started };
  } catch (err) {
    const message = redactText(errorMessage(err));
    const undo = await undoPlacement(deps, tenant);
    await updateTenant(db, tenant.slug, { status: 'failed', status_detail: message + (undo ? `; cleanup: ${undo}` : '') });
    await recordEvent(db, { command, action: 'provision failed', result: 'failed', tenant: tenant.slug, details: { error: message, cleanup: undo ?? 'done' } });
    return {
      ...base,
      status: 'failed',
      durationMs: Date.now() - started,
      error: { code: err instanceof TenantctlError ? err.code : 'PROVISION_FAILED', message, hint: `run the same command again to retry; tenantctl tenant delete ${tenant.slug} --yes to give up` },
    };
  }
}

/** Remove what a failed provisioning created; returns a problem, or null when all is clean. */
async function undoPlacement(deps: ProvisionDeps, tenant: TenantRow): Promise<string | null> {
  try {
    await drivers[tenant.model].remove(deps.fleet, deps.config, tenant);
    return null;
  } catch (err) {
    return redactText(errorMessage(err));
  }
}

async function freshKey(config: Config, db: CatalogDb, slug: string): Promise<string> {
  switch (config.tenantKey.type) {
    case 'uuid':
      return randomUUID();
    case 'bigint':
      return nextBigintKey(db);
    case 'text':
      return slug;
  }
}
