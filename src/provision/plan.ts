import type { Config, Model } from '../config/types.js';
import { MODELS } from '../config/schema.js';
import { UsageError } from '../errors.js';
import { placementFor } from '../placement/drivers.js';
import type { Placement } from '../placement/naming.js';
import { assertSlug } from '../placement/slug.js';

export interface CreateTenantInput {
  slug: string;
  name?: string;
  tier?: string;
  model?: string;
  region?: string;
  shard?: string;
  key?: string;
  /** A residency requirement (`eu`): the tenant may only live in regions with that label. */
  residency?: string;
}

export interface TenantPlan {
  slug: string;
  name: string;
  tier: string;
  model: Model;
  region: string;
  shard: string;
  residency: string | null;
  key?: string;
  placement: Placement;
}

/**
 * Each value a create names that names nothing in the config, in the order planTenant checks
 * them: planning throws the first, a file's row lists them all (bulk-check.ts). Values the create
 * leaves out come from the config (the tier's model, the default region) and are valid there.
 */
export function unknownNames(config: Config, input: CreateTenantInput): UsageError[] {
  const out: UsageError[] = [];
  const oneOf = (names: string[]) => `use one of: ${names.join(', ')}`;
  if (input.tier !== undefined && !config.tiers[input.tier])
    out.push(new UsageError('UNKNOWN_TIER', `unknown tier "${input.tier}"`, oneOf(Object.keys(config.tiers))));
  if (input.model !== undefined && !(MODELS as readonly string[]).includes(input.model))
    out.push(new UsageError('UNKNOWN_MODEL', `unknown model "${input.model}"`, oneOf([...MODELS])));
  if (input.shard && !config.shards.some((s) => s.name === input.shard))
    out.push(new UsageError('UNKNOWN_SHARD', `unknown shard "${input.shard}"`, oneOf(config.shards.map((s) => s.name))));
  if (input.region !== undefined && !config.regions[input.region])
    out.push(new UsageError('UNKNOWN_REGION', `unknown region "${input.region}"`, oneOf(Object.keys(config.regions))));
  return out;
}

/**
 * Decide where a new tenant goes (pure): tier decides the model unless --model is given; region
 * from --region or the default; shard is the least-loaded of the region unless --shard is given;
 * a region that breaks the residency is refused.
 *
 * @example
 *   planTenant(config, { slug: 'acme', tier: 'standard' }, new Map([['us1', 3], ['us2', 1]]))
 *   // → { model: 'schema', region: 'us-east', shard: 'us2', ... }
 */
export function planTenant(
  config: Config,
  input: CreateTenantInput,
  load: Map<string, number>,
  down: ReadonlySet<string> = new Set(),
): TenantPlan {
  const slug = assertSlug(input.slug);
  const [unknown] = unknownNames(config, input);
  if (unknown) throw unknown;
  const tier = input.tier ?? config.defaultTier;
  const model = (input.model ?? config.tiers[tier].model) as Model;
  const shardGiven = input.shard ? config.shards.find((s) => s.name === input.shard) : undefined;
  const region = input.region ?? shardGiven?.region ?? config.defaultRegion;
  const regionCfg = config.regions[region];
  if (shardGiven && shardGiven.region !== region) {
    throw new UsageError(
      'UNKNOWN_SHARD',
      `shard "${shardGiven.name}" is in region ${shardGiven.region}, not ${region}`,
      `drop --region, or pick a shard of ${region}: ${Object.keys(regionCfg.shards).join(', ')}`,
    );
  }
  const residency = input.residency ?? null;
  if (residency && regionCfg.residency !== residency) {
    const ok = Object.entries(config.regions)
      .filter(([, r]) => r.residency === residency)
      .map(([n]) => n);
    throw new UsageError(
      'RESIDENCY',
      `region ${region} breaks residency "${residency}" (its residency is ${regionCfg.residency ?? 'unset'})`,
      ok.length ? `use --region ${ok.join(' or --region ')}` : `no region has residency "${residency}"; add one to the config`,
    );
  }
  const shard =
    shardGiven?.name ??
    Object.keys(regionCfg.shards)
      // Shards found unreachable are passed over for the next least-loaded one of the region.
      .filter((n) => !down.has(n))
      // Least loaded first; the name breaks ties so the choice is deterministic.
      .sort((a, b) => (load.get(a) ?? 0) - (load.get(b) ?? 0) || a.localeCompare(b))[0];
  if (!shard) {
    throw new UsageError(
      'UNREACHABLE',
      `no shard of region ${region} answers (${Object.keys(regionCfg.shards).join(', ')} unreachable); nothing was created`,
      'start the shards (tenantctl dev up for embedded ones) or check their urls; tenantctl doctor shows which answer',
    );
  }
  const s = config.shards.find((x) => x.name === shard)!;
  const key = input.key === undefined ? undefined : canonicalKey(config, input.key);
  return {
    slug,
    name: input.name ?? slug,
    tier,
    model,
    region,
    shard,
    residency: residency ?? regionCfg.residency ?? null,
    key,
    placement: placementFor(slug, model, shard, s),
  };
}

/**
 * A --key (or a file's `key`) as PostgreSQL prints it back: the catalog's unique key is text, the
 * pool compares the key column as its type. Found: `--key 007` and `--key 7` on a bigint fleet (or
 * one uuid in upper and in lower case) were two tenants of one key: each read the other's rows, and
 * deleting one fenced and removed the other's. Refused as bad input when it is not of the type.
 */
export function canonicalKey(config: Config, key: string): string {
  validateKey(config, key);
  const type = config.tenantKey.type;
  if (type === 'uuid') return key.toLowerCase();
  if (type === 'bigint') return BigInt(key).toString();
  return key;
}

/** canonicalKey where the key is valid; as given where it is not (its own check says so). */
export function keyAsStored(config: Config, key: string): string {
  try {
    return canonicalKey(config, key);
  } catch {
    return key;
  }
}

/** A --key must parse as the configured key type. */
function validateKey(config: Config, key: string): void {
  const type = config.tenantKey.type;
  const ok =
    type === 'uuid'
      ? /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(key)
      : type === 'bigint'
        ? /^-?\d{1,18}$/.test(key)
        : key.length > 0 && key.length <= 200 && !key.includes('\0');
  if (!ok) {
    throw new UsageError(
      'BAD_INPUT',
      `--key ${JSON.stringify(key)} is not a valid ${type}`,
      `give a ${type} key, or leave --key out for a fresh one`,
    );
  }
}
