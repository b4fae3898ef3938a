import type { TenantSelector } from '../catalog/tenants.js';
import { selectTenants } from '../catalog/tenants.js';
import { fanout } from '../fanout/run.js';
import { TenantctlError, UsageError } from '../errors.js';
import { onInterrupt } from '../operations/interrupt.js';
import { storageFor, encryptsBackups } from './regions.js';
import { masterKey } from './crypto.js';
import { backupTenant, type BackupDeps, type BackupResult } from './create.js';

/**
 * `backup create`: the named tenants (or every one the selectors match), fanned out with the
 * global bound and each shard's connection budget (a backup holds one connection, two with
 * pg_dump). One result per tenant; a missing slug is exit 2 before anything runs.
 */
export async function backupTenants(
  deps: BackupDeps,
  which: { slugs: string[]; all: boolean; selector: TenantSelector },
  opts: { concurrency: number; onResult?: (r: BackupResult) => void },
): Promise<BackupResult[]> {
  if (which.slugs.length === 0 && !which.all) {
    throw new UsageError(
      'USAGE',
      'name the tenants to back up, or pass --all',
      'e.g. tenantctl backup create acme, or tenantctl backup create --all --region eu-west',
    );
  }
  const selector = which.slugs.length ? { ...which.selector, tenants: which.slugs } : which.selector;
  const tenants = await selectTenants(deps.db, selector);
  const missing = which.slugs.filter((s) => !tenants.some((t) => t.slug === s));
  if (missing.length)
    throw new UsageError('TENANT_NOT_FOUND', `no tenant ${missing.map((m) => `"${m}"`).join(', ')}`, 'see tenantctl tenant list');
  // Bad input for the whole run (exit 2) before any tenant starts: storage, and the master key
  // of an encrypting region.
  for (const region of new Set(tenants.map((t) => t.region))) {
    storageFor(deps.config, region);
    if (encryptsBackups(deps.config, region)) masterKey();
  }
  return fanout(
    tenants,
    {
      concurrency: opts.concurrency,
      onError: 'continue',
      shardOf: (t) => t.shard,
      shardBudget: (s) => Math.max(1, Math.floor(deps.fleet.connections(s).budget / 2)),
      onResult: (_t, r) => opts.onResult?.(r as BackupResult),
      // Ctrl-C: no new tenant starts; the running ones stop at their next clean point.
      signal: deps.signal ?? onInterrupt('interrupted: no new backups start; the running ones stop and remove their partial archives'),
    },
    async (t) => {
      // A tenant the selectors matched and a `tenant delete` removed before its turn: nothing to
      // back up, not a failure of the cron run (migrate up skips it the same way). Named, it stays a failure.
      const gone = (code: unknown) => which.slugs.length === 0 && code === 'TENANT_NOT_FOUND';
      const skipped: BackupResult = {
        tenant: t.slug,
        model: t.model,
        region: t.region,
        shard: t.shard,
        status: 'skipped',
        reason: 'gone: the tenant was deleted during the run',
      };
      try {
        const r = await backupTenant(deps, t.slug);
        return r.status === 'failed' && gone(r.error?.code) ? skipped : r;
      } catch (err) {
        if (err instanceof TenantctlError && gone(err.code)) return skipped;
        throw err;
      }
    },
    (t, reason) => ({ tenant: t.slug, model: t.model, region: t.region, shard: t.shard, status: 'skipped', reason }),
  );
}
