import { UsageError, type ErrorCode } from '../errors.js';
import type { Config } from '../config/types.js';
import type { CatalogDb } from '../catalog/open.js';
import type { TenantSelector } from '../catalog/tenants.js';
import { MODELS } from '../config/schema.js';

const STATUSES = ['provisioning', 'active', 'suspended', 'failed', 'deleting', 'moving'];

/**
 * Selector values must name something: `--tier nope` or `--shard us9` selecting nothing with
 * exit 0 would read as "all is well" to a script. Every unknown value is reported at once with
 * the valid ones; exit 2. Tiers, regions and shards are the config's; models and statuses fixed.
 *
 * @example
 *   checkSelectorValues(config, { shard: ['us9'] }) // throws: --shard us9: no such shard (valid: us1, us2, eu1)
 */
export function checkSelectorValues(config: Config, s: TenantSelector): void {
  const kinds: [keyof TenantSelector, string, ErrorCode, string[]][] = [
    ['model', 'model', 'UNKNOWN_MODEL', [...MODELS]],
    ['tier', 'tier', 'UNKNOWN_TIER', Object.keys(config.tiers)],
    ['region', 'region', 'UNKNOWN_REGION', Object.keys(config.regions)],
    ['shard', 'shard', 'UNKNOWN_SHARD', config.shards.map((x) => x.name)],
    ['status', 'status', 'BAD_INPUT', STATUSES],
  ];
  const problems: { code: ErrorCode; text: string }[] = [];
  for (const [flag, noun, code, valid] of kinds) {
    const bad = (s[flag] ?? []).filter((v) => !valid.includes(v));
    if (bad.length) problems.push({ code, text: `--${flag} ${bad.join(',')}: no such ${noun} (valid: ${valid.join(', ')})` });
  }
  if (problems.length) {
    throw new UsageError(
      problems.length === 1 ? problems[0].code : 'BAD_INPUT',
      problems.map((p) => p.text).join('\n'),
      'use one of the valid values; tiers, regions and shards come from the config (tenantctl config show)',
    );
  }
}

/**
 * `--tenant` slugs must name tenants in the catalog: a typo would otherwise select nothing and
 * exit 0 (migrate up "done" for a tenant it never saw). Exit 2 naming the unknown ones.
 */
export async function checkTenantsExist(db: CatalogDb, s: TenantSelector): Promise<void> {
  if (!s.tenants?.length) return;
  const { selectTenants } = await import('../catalog/tenants.js');
  const found = new Set((await selectTenants(db, { tenants: s.tenants })).map((t) => t.slug));
  const missing = [...new Set(s.tenants.filter((t) => !found.has(t)))];
  if (missing.length) {
    throw new UsageError(
      'TENANT_NOT_FOUND',
      `--tenant: no tenant ${missing.map((m) => JSON.stringify(m)).join(', ')}`,
      'see tenantctl tenant list',
    );
  }
}

/** Both checks, for commands that read the catalog anyway. */
export async function checkSelector(config: Config, db: CatalogDb, s: TenantSelector): Promise<void> {
  checkSelectorValues(config, s);
  await checkTenantsExist(db, s);
}
