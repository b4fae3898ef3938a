import type { TenantRow } from '../catalog/tables.js';
import type { Config, Model } from '../config/types.js';
import { MODELS } from '../config/schema.js';
import { UsageError } from '../errors.js';
import { placementFor } from '../placement/drivers.js';
import { rowTargetId, targetId } from '../placement/naming.js';

/** What the operator asked for: `move acme --to-region eu-west --to-model database`. */
export interface MoveRequest {
  toShard?: string;
  toRegion?: string;
  toModel?: string;
}

/** One end of a move. */
export interface MoveEnd {
  model: Model;
  shard: string;
  region: string;
  database: string;
  schema: string;
  /** `us1/tenant_pool/app` */
  target: string;
}

export interface MovePlan {
  tenant: string;
  key: string;
  residency: string | null;
  from: MoveEnd;
  to: MoveEnd;
}

/**
 * A move names one destination: --to-shard or --to-region (either with --to-model), or --to-model
 * alone (its own shard). Checked before anything else, the confirmation included (`move acme`
 * without a destination is not a question of --yes).
 */
export function assertMoveDestination(req: Pick<MoveRequest, 'toShard' | 'toRegion' | 'toModel'>): void {
  if (req.toShard && req.toRegion)
    throw new UsageError(
      'USAGE',
      'say where to move: --to-shard or --to-region, not both',
      'e.g. tenantctl move acme --to-shard eu1, --to-region eu-west, or --to-model database',
    );
  if (!req.toShard && !req.toRegion && !req.toModel)
    throw new UsageError(
      'USAGE',
      'say where to move: --to-shard, --to-region, or --to-model alone (the model changes on its shard)',
      'e.g. tenantctl move acme --to-shard eu1, --to-region eu-west, or --to-model database',
    );
}

/**
 * The pure half of `move`: from the tenant's catalog row, the config and the flags to where it
 * goes. Refuses (exit 2) an unknown shard, region or model, a shard whose residency is not the
 * tenant's (fail closed: a tenant with a residency never goes to a shard without one), and a
 * move to where the tenant already is. `--to-region` picks the region's shard with the fewest
 * tenants (`counts`), by name on a tie, preferring not to stay on the current shard. `--to-model`
 * alone changes the model on the tenant's shard.
 *
 * @example
 *   planMove(config, acme, { toRegion: 'eu-west', toModel: 'database' }).to.target // 'eu1/t_acme/app'
 */
export function planMove(config: Config, t: TenantRow, req: MoveRequest, counts: Map<string, number> = new Map()): MovePlan {
  assertMoveDestination(req);
  // `--to-model` alone changes the model where the tenant is: its own shard.
  if (req.toModel && !req.toShard && !req.toRegion) req = { ...req, toShard: t.shard };
  const model = (req.toModel ?? t.model) as Model;
  if (!(MODELS as readonly string[]).includes(model)) {
    throw new UsageError('UNKNOWN_MODEL', `unknown model "${req.toModel}"`, `use one of: ${MODELS.join(', ')}`);
  }
  let shard = config.shards.find((s) => s.name === req.toShard);
  if (req.toShard && !shard) {
    throw new UsageError('UNKNOWN_SHARD', `unknown shard "${req.toShard}"`, `use one of: ${config.shards.map((s) => s.name).join(', ')}`);
  }
  if (req.toRegion) {
    const inRegion = config.shards.filter((s) => s.region === req.toRegion);
    if (inRegion.length === 0) {
      const regions = [...new Set(config.shards.map((s) => s.region))];
      throw new UsageError('UNKNOWN_REGION', `unknown region "${req.toRegion}"`, `use one of: ${regions.join(', ')}`);
    }
    const candidates = model === t.model ? inRegion.filter((s) => s.name !== t.shard) : inRegion;
    if (candidates.length === 0) {
      throw new UsageError(
        'USAGE',
        `${t.slug} is already on the only shard of ${req.toRegion} (${t.shard}) as a ${t.model} tenant`,
        'pass --to-model to change its model there, or another region',
      );
    }
    shard = [...candidates].sort((a, b) => (counts.get(a.name) ?? 0) - (counts.get(b.name) ?? 0) || (a.name < b.name ? -1 : 1))[0];
  }
  const s = shard!;
  if (t.residency && s.residency !== t.residency) {
    const ok = config.shards.filter((x) => x.residency === t.residency).map((x) => x.name);
    throw new UsageError(
      'RESIDENCY',
      `moving ${t.slug} to shard ${s.name} (region ${s.region}, residency ${s.residency ?? 'unset'}) breaks its residency "${t.residency}"; nothing was changed`,
      ok.length ? `move it within its residency: --to-shard ${ok.join(' or --to-shard ')}` : `no shard has residency "${t.residency}"`,
    );
  }
  const p = placementFor(t.slug, model, s.name, { poolDatabase: s.poolDatabase, tenantDatabase: s.tenantDatabase });
  const from: MoveEnd = {
    model: t.model,
    shard: t.shard,
    region: t.region,
    database: t.database_name,
    schema: t.schema_name,
    target: rowTargetId(t),
  };
  const to: MoveEnd = { model, shard: s.name, region: s.region, database: p.database, schema: p.schema, target: targetId(p) };
  if (from.target === to.target || (from.shard === to.shard && from.model === to.model)) {
    throw new UsageError(
      'USAGE',
      `${t.slug} is already a ${t.model} tenant on ${t.shard} (${from.target})`,
      'pick another shard, region or model',
    );
  }
  if (from.shard === to.shard && from.database === to.database && from.schema === to.schema) {
    throw new UsageError('USAGE', `the target ${to.target} is the tenant's current placement`, 'pick another shard or model');
  }
  return { tenant: t.slug, key: t.key, residency: t.residency, from, to };
}
