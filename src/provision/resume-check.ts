import type { Config } from '../config/types.js';
import type { TenantRow } from '../catalog/tables.js';
import { UsageError } from '../errors.js';
import { keyAsStored, type CreateTenantInput } from './plan.js';

/**
 * A re-run of `tenant create` for a tenant left `provisioning` or `failed` finishes it where the
 * catalog recorded it. Flags that say otherwise (another region, shard, model, tier, residency,
 * key or name) are refused, not overridden and not silently ignored: a residency request must
 * never come back "created" on a shard of another region. Pure.
 *
 * @example
 *   resumeConflicts(config, row, { slug: 'acme', region: 'eu-west' })
 *   // ['--region eu-west (recorded: us-east)']
 */
export function resumeConflicts(config: Config, row: TenantRow, input: CreateTenantInput): string[] {
  const out: string[] = [];
  const differs = (flag: string, given: string | undefined, recorded: string | null) => {
    if (given !== undefined && given !== recorded) out.push(`--${flag} ${given} (recorded: ${recorded ?? 'none'})`);
  };
  differs('tier', input.tier, row.tier);
  differs('model', input.model, row.model);
  if (input.model === undefined && input.tier !== undefined && config.tiers[input.tier] && config.tiers[input.tier].model !== row.model) {
    out.push(`tier ${input.tier} means model ${config.tiers[input.tier].model} (recorded: ${row.model})`);
  }
  differs('region', input.region, row.region);
  differs('shard', input.shard, row.shard);
  if (input.residency !== undefined && config.regions[row.region]?.residency !== input.residency) {
    out.push(
      `--residency ${input.residency} (recorded region ${row.region} has residency ${config.regions[row.region]?.residency ?? 'unset'})`,
    );
  }
  differs('key', input.key === undefined ? undefined : keyAsStored(config, input.key), row.key);
  differs('name', input.name, row.name);
  return out;
}

/** Throw (exit 2) when a re-run's flags conflict with the recorded placement. */
export function assertResumable(config: Config, row: TenantRow, input: CreateTenantInput): void {
  const conflicts = resumeConflicts(config, row, input);
  if (conflicts.length === 0) return;
  throw new UsageError(
    'TENANT_STATE',
    `tenant "${row.slug}" is ${row.status}, recorded as ${row.model} on ${row.shard} (${row.region}) by an earlier attempt; ` +
      `this run asks otherwise: ${conflicts.join('; ')}`,
    `run it again without those flags to finish it as recorded, or give it up first: tenantctl tenant delete ${row.slug} --yes`,
  );
}
