import { fanout } from '../fanout/run.js';
import type { TenantResult } from '../fanout/result.js';
import { TenantctlError, errorMessage } from '../errors.js';
import { redactText } from '../config/redact.js';
import { createTenant, type ProvisionDeps } from './create-tenant.js';
import { tenantCountsByShard } from '../catalog/tenants.js';
import type { CreateTenantInput } from './plan.js';
import { parseTenantFile, throwBulkProblems } from './bulk-file.js';
import { assertBulkInputs } from './bulk-check.js';
import { BulkRun } from './bulk-run.js';

export interface BulkOptions {
  concurrency: number;
  onStart?: (input: CreateTenantInput) => void;
  onResult?: (input: CreateTenantInput, r: TenantResult) => void;
  signal?: AbortSignal;
}

/**
 * Onboard many tenants with bounded concurrency; one result per tenant, in file order. A bad row
 * fails alone; the others go on. Tenants that already exist are skipped, so the same file can be
 * run again after a partial failure (failed and interrupted ones are finished).
 */
export async function createTenants(deps: ProvisionDeps, inputs: CreateTenantInput[], opts: BulkOptions): Promise<TenantResult[]> {
  const bulk = await BulkRun.open(
    deps.db,
    inputs.map((i) => i.slug),
    {
      command: deps.command ?? 'tenant create',
      wait: deps.wait,
      onWaiting: deps.onWaiting,
      signal: opts.signal,
      concurrency: opts.concurrency,
    },
  );
  try {
    const shared: ProvisionDeps = {
      ...deps,
      shardLoad: deps.shardLoad ?? (await tenantCountsByShard(deps.db)),
      // A shard found down is passed over by every later row; a database found free of drift is
      // checked once per run.
      downShards: deps.downShards ?? new Set(),
      driftChecked: deps.driftChecked ?? new Set(),
      bulk,
    };
    return await createEach(shared, inputs, opts);
  } finally {
    await bulk.close();
  }
}

function createEach(shared: ProvisionDeps, inputs: CreateTenantInput[], opts: BulkOptions): Promise<TenantResult[]> {
  return fanout(
    inputs,
    {
      concurrency: opts.concurrency,
      onError: 'continue',
      // Placement is decided per tenant inside createTenant; the shard bound there is the
      // connection budget, enforced by the fleet's connection pool.
      shardOf: () => '*',
      shardBudget: () => opts.concurrency,
      signal: opts.signal,
      onStart: opts.onStart,
      onResult: opts.onResult,
    },
    async (input) => {
      try {
        return await createTenant(shared, input);
      } catch (err) {
        // Re-running a file after a partial failure must not fail on the rows that made it.
        if (err instanceof TenantctlError && err.code === 'TENANT_EXISTS') {
          return { tenant: input.slug, status: 'skipped', reason: err.message };
        }
        return {
          tenant: input.slug,
          status: 'failed',
          error: { code: err instanceof TenantctlError ? err.code : 'PROVISION_FAILED', message: redactText(errorMessage(err)) },
        };
      }
    },
    (input, reason) => ({ tenant: input.slug, status: 'skipped', reason }),
  );
}

/**
 * `tenant create --from-file`: read the file (every row validated), check every row against the
 * config and the catalog (all problems at once, exit 2, nothing created), then create them.
 * `onRead` hears how many rows there are before the first one starts (for the progress display).
 *
 * @example
 *   const results = await createTenantsFromFile(async () => deps, 'new-tenants.csv', { concurrency: 8 });
 */
export async function createTenantsFromFile(
  connect: () => Promise<ProvisionDeps>,
  file: string,
  opts: BulkOptions & { onRead?: (inputs: CreateTenantInput[]) => void },
): Promise<TenantResult[]> {
  // The file first: one that cannot be parsed is exit 2 before any connection is opened. Its
  // rows' problems are listed with the config's and catalog's, in one list (bulk-check.ts).
  const { rows, problems } = parseTenantFile(file);
  let deps: ProvisionDeps;
  try {
    deps = await connect();
  } catch (err) {
    throwBulkProblems(file, problems);
    throw err;
  }
  const inputs = rows.map((r) => r.input);
  opts.onRead?.(inputs);
  await assertBulkInputs(deps, rows, problems, file);
  return createTenants(deps, inputs, opts);
}
