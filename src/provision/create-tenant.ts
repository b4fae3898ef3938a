import { freshKey } from '../catalog/fresh-key.js';
import type { Config } from '../config/types.js';
import type { CatalogDb } from '../catalog/open.js';
import { tenantCountsByShard, updateTenant } from '../catalog/tenants.js';
import type { TenantRow } from '../catalog/tables.js';
import { recordEvent } from '../catalog/events.js';
import type { Fleet } from '../fleet/fleet.js';
import type { TenantResult } from '../fanout/result.js';
import { redactText } from '../config/redact.js';
import { TenantctlError, UsageError, errorMessage } from '../errors.js';
import { drivers } from '../placement/drivers.js';
import type { PoolScope } from '../placement/pool/rows.js';
import { ADMIN_DATABASE } from '../placement/databases.js';
import { tenantResultBase } from '../placement/naming.js';
import type { MigrationFile } from '../migrate/files.js';
import { buildPlacement } from '../build/at-files.js';
import { planTenant, type CreateTenantInput } from './plan.js';
import { assertSlug } from '../placement/slug.js';
import { runTenantOperation, type OperationRun } from '../operations/tenant-operation.js';
import type { NewOperation, OperationRecord } from '../operations/operation-record.js';
import { activateRecordedTenant, insertRecordedTenant } from './recorded-tenant.js';
import type { BulkRun } from './bulk-run.js';
import { sweepRecords } from '../operations/sweep.js';
import { assertResumable } from './resume-check.js';
import { assertNoDrift, assertNothingThere } from './preflight.js';
import { applyLimitsTo } from '../limits/apply.js';
import { faultPoint } from '../operations/fault-points.js';

export interface ProvisionDeps {
  config: Config;
  db: CatalogDb;
  fleet: Fleet;
  migrations: MigrationFile[];
  command?: string;
  /**
   * In-process tests of the rollback and re-run promises: 'prepared' or 'migrated' fails at that
   * fault point (create.prepared, create.migrated); the CLI's tests use TENANTCTL_FAULT instead.
   */
  failAfter?: string;
  /** What stops the create at its next clean point (default: the process's Ctrl-C and SIGTERM). */
  signal?: AbortSignal;
  /** Tests only: leave what a failure left behind (no undo), to check what it left. */
  skipUndo?: boolean;
  /** Tenants per shard for least-loaded placement; bulk runs pass one map and it is kept current. */
  shardLoad?: Map<string, number>;
  /** Shards found unreachable in this process; placement passes over them (bulk runs share it). */
  downShards?: Set<string>;
  /** `shard/database` pairs found free of drift in this process (bulk runs share it). */
  driftChecked?: Set<string>;
  /** Wait for another command's lock on the tenant instead of exit 3. */
  wait?: boolean;
  onWaiting?: (holder: string) => void;
  /** A bulk run's tenant locks (taken in batches) and what it found killed creates left (bulk-run.ts). */
  bulk?: BulkRun;
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
  assertSlug(input.slug);
  // One operation per tenant: a concurrent create, delete or migration of this slug waits for us
  // (or exits 3), so a `provisioning` row is only ever finished by the process that holds it.
  // Ctrl-C: a tenant being created finishes (one transaction, or undone on failure).
  const command = deps.command ?? 'tenant create';
  // A bulk run took the lock and read the row with its batch; a single create lets the engine.
  const locked = await deps.bulk?.take(input.slug);
  // Its sweep closes only the record of a killed create (its placement is finished or undone
  // below). A bulk run looked for such records once, for all its rows: a new tenant it found none
  // for has nothing to sweep.
  const spec = {
    kind: 'create',
    slug: input.slug,
    tenant: 'optional',
    locked,
    sweep: (t: TenantRow | undefined) =>
      deps.bulk && !t && !deps.bulk.mayHaveKilled(input.slug) ? Promise.resolve([]) : sweepRecords({ ...deps, command }, input.slug),
  } as const;
  return runTenantOperation({ ...deps, command }, spec, (run) => createLocked(deps, input, run));
}

async function createLocked(deps: ProvisionDeps, input: CreateTenantInput, run: OperationRun): Promise<TenantResult> {
  const started = Date.now();
  // Read under the lock: what the catalog says now, not before another process finished.
  const existing = run.tenant;
  if (existing && existing.status !== 'provisioning' && existing.status !== 'failed') {
    throw new UsageError(
      'TENANT_EXISTS',
      `tenant "${input.slug}" already exists (${existing.status}, ${existing.model} on ${existing.shard})`,
      `pick another slug, or see tenantctl tenant show ${input.slug}`,
    );
  }
  const resumed = existing !== undefined;
  const args = { tier: input.tier ?? null, model: input.model ?? null, region: input.region ?? null, shard: input.shard ?? null };
  let tenant: TenantRow;
  if (existing) {
    await run.record(args);
    tenant = await resumeRow(deps, existing, input);
  } else {
    const made = await insertProvisioning(deps, await placeReachable(deps, input), { kind: 'create', tenant: input.slug, args });
    run.adopt(made.op);
    tenant = made.tenant;
  }
  const op = run.op as OperationRecord;
  const base = tenantResultBase(tenant);
  try {
    await buildAndActivate(deps, tenant, base, resumed, op);
    return { ...base, status: 'succeeded', key: tenant.key, resumed, durationMs: Date.now() - started };
  } catch (err) {
    return createFailed(deps, tenant, op, err, base, started);
  }
}

type Base = { tenant: string; model: TenantRow['model']; region: string; shard: string; target: string };
type Plan = ReturnType<typeof planTenant>;

/** Every database the new placement touches is at a version the migration files know (exit 2 otherwise). */
function assertNoDriftAt(deps: ProvisionDeps, shard: string, database: string): Promise<void> {
  const s = deps.fleet.shard(shard);
  return assertNoDrift(deps.fleet, shard, [database, s.poolDatabase, s.tenantDatabase], deps.migrations, deps.driftChecked);
}

/**
 * An earlier run was interrupted or failed: finish its placement as recorded, and refuse flags
 * that ask for another one rather than ignore them.
 */
async function resumeRow(deps: ProvisionDeps, row: TenantRow, input: CreateTenantInput): Promise<TenantRow> {
  assertResumable(deps.config, row, input);
  await deps.fleet.assertReachable(row.shard, ADMIN_DATABASE);
  await assertNoDriftAt(deps, row.shard, row.database_name);
  return row;
}

/**
 * The new tenant's plan on a shard that answers. An unreachable shard is passed over for the next
 * least-loaded one of the region (a shard named with --shard is refused); none answering is exit
 * 2, before the catalog records anything.
 */
async function placeReachable(deps: ProvisionDeps, input: CreateTenantInput): Promise<Plan> {
  const load = deps.shardLoad ?? (await tenantCountsByShard(deps.db));
  const down = deps.downShards ?? new Set<string>();
  // Bulk runs share one count instead of a GROUP BY over the catalog per tenant. The tenant is
  // counted as soon as it is placed, before the first await: rows placed at the same time see
  // each other, instead of all taking the shard that was least loaded when they started.
  const count = (shard: string, n: number) => {
    if (deps.shardLoad) load.set(shard, (load.get(shard) ?? 0) + n);
  };
  let plan = planTenant(deps.config, input, load, down);
  count(plan.shard, 1);
  for (;;) {
    try {
      await deps.fleet.assertReachable(plan.shard, ADMIN_DATABASE);
      return plan;
    } catch (err) {
      if (input.shard || !(err instanceof TenantctlError) || err.code !== 'UNREACHABLE') throw err;
      down.add(plan.shard);
      count(plan.shard, -1);
      plan = planTenant(deps.config, input, load, down);
      count(plan.shard, 1);
    }
  }
}

/**
 * Checks the planned placement is free (no drift, nothing there, no rows with the key), then
 * records the tenant as provisioning: the catalog never claims more than exists.
 */
async function insertProvisioning(deps: ProvisionDeps, plan: Plan, op: NewOperation): Promise<{ tenant: TenantRow; op: OperationRecord }> {
  const { config, db, fleet } = deps;
  await assertNoDriftAt(deps, plan.shard, plan.placement.database);
  await assertNothingThere(fleet, {
    slug: plan.slug,
    model: plan.model,
    shard: plan.shard,
    database: plan.placement.database,
    schema: plan.placement.schema,
  });
  const key = plan.key ?? (await freshKey(config, db, plan.slug));
  await refuseKeyInUse(
    deps,
    { shard: plan.shard, database_name: plan.placement.database, schema_name: plan.placement.schema, key },
    plan.model,
  );
  try {
    return await insertRecordedTenant(
      db,
      {
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
      },
      op,
    );
  } catch (err) {
    if ((err as { code?: string }).code === '23505') {
      throw new UsageError('TENANT_EXISTS', `tenant "${plan.slug}" or its key already exists`, 'pick another slug or --key');
    }
    throw err;
  }
}

/** Builds the recorded placement, applies its tier's limits, then turns the row active. */
async function buildAndActivate(deps: ProvisionDeps, tenant: TenantRow, base: Base, resumed: boolean, op: OperationRecord): Promise<void> {
  const { config, fleet } = deps;
  const command = deps.command ?? 'tenant create';
  const fault = deps.failAfter ? `create.${deps.failAfter}:fail` : undefined;
  // Schema and database tenants: placement, migrations with their tracking rows, and grants
  // commit together where the migrations allow (promise 2); the faults fire inside.
  await buildPlacement(tenant, {
    fleet,
    config,
    files: deps.migrations,
    afterPrepare: () => faultPoint('create.prepared', { override: fault }),
    afterLoad: () => faultPoint('create.migrated', { override: fault }),
  });
  // The tier's limits on the tenant's role and database (issue 19), before it turns active: a
  // limit PostgreSQL refuses fails the provisioning like any other step.
  await applyLimitsTo({ config, fleet }, tenant, tenant.tier);
  const version = deps.migrations.at(-1)?.id ?? null;
  await activateRecordedTenant(deps.db, {
    slug: tenant.slug,
    version,
    event: { command, action: 'provisioned', result: 'ok', tenant: tenant.slug, details: { ...base, resumed } },
    op,
  });
}

/** A failed build: undo what was created, mark the row failed (a re-run finishes it), and say so. */
async function createFailed(
  deps: ProvisionDeps,
  tenant: TenantRow,
  op: OperationRecord,
  err: unknown,
  base: Base,
  started: number,
): Promise<TenantResult> {
  const { db } = deps;
  const command = deps.command ?? 'tenant create';
  const message = redactText(errorMessage(err));
  const undo = deps.skipUndo ? 'skipped' : await undoPlacement(deps, tenant);
  await updateTenant(db, tenant.slug, { status: 'failed', status_detail: message + (undo ? `; cleanup: ${undo}` : '') });
  await op.finish('failed', { error: message });
  await recordEvent(db, {
    command,
    action: 'provision failed',
    result: 'failed',
    tenant: tenant.slug,
    details: { error: message, cleanup: undo ?? 'done' },
  });
  return {
    ...base,
    status: 'failed',
    durationMs: Date.now() - started,
    error: {
      code: err instanceof TenantctlError ? err.code : 'PROVISION_FAILED',
      message,
      hint:
        err instanceof TenantctlError && err.code === 'RLS_UNSAFE' && err.hint
          ? `${redactText(err.hint)}; then run the same command again (or tenantctl tenant delete ${tenant.slug} --yes to give up)`
          : `run the same command again to retry; tenantctl tenant delete ${tenant.slug} --yes to give up`,
    },
  };
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

/**
 * A shared placement that still holds rows with this key (a deleted tenant's leftovers, or rows
 * written by hand) would show them to the new tenant: refuse before anything is created.
 */
async function refuseKeyInUse(deps: ProvisionDeps, scope: PoolScope, model: TenantRow['model']): Promise<void> {
  const keyRows = drivers[model].keyRows;
  if (!keyRows) return;
  const found = await keyRows(deps.fleet, deps.config, scope);
  if (found.length === 0) return;
  throw new UsageError(
    'KEY_IN_USE',
    `key ${scope.key} still has rows in ${scope.shard}/${scope.database_name}: ${found.map((f) => `${scope.schema_name}.${f.table} (${f.rows})`).join(', ')}`,
    'pick another --key, or remove those rows first (they belong to no tenant in the catalog, or to a deleted one)',
  );
}
export { freshKey } from '../catalog/fresh-key.js';
