/**
 * `tenant limits apply`, create and set-tier: bring tenants' roles and databases to their tier's
 * limits. Per shard, the state of every selected tenant is read in one query on the maintenance
 * database; then each tenant that differs gets its changes in one round trip (one transaction),
 * through the bounded runner (global concurrency, each shard's budget). A tenant that fails is
 * reported and the rest go on.
 *
 * @module
 */
import type { Config } from '../config/types.js';
import type { TenantRow } from '../catalog/tables.js';
import type { Fleet } from '../fleet/fleet.js';
import { fanout } from '../fanout/run.js';
import type { TenantResult } from '../fanout/result.js';
import { ADMIN_DATABASE } from '../placement/databases.js';
import type { CatalogPlacement } from '../placement/placement.js';
import {
  applyLimitChanges,
  desiredLimits,
  limitChanges,
  limitTarget,
  readLimitStates,
  type LimitChange,
  type LimitState,
  type LimitTarget,
} from '../placement/limits.js';
import { sessionOptions } from './settings.js';

/** Read-state queries carry at most this many tenants (one array parameter each). */
const STATE_CHUNK = 1000;

export interface LimitsResult extends TenantResult {
  tier: string;
  /** What differed (dry run: what would change). */
  changes: Omit<LimitChange, 'sql'>[];
  /** Models without a role of their own: where their limits are instead. */
  note?: string;
}

export interface LimitsOptions {
  dryRun?: boolean;
  concurrency: number;
  /** The tier to apply instead of the catalog's (set-tier, before the catalog records it). */
  tierOf?: (t: TenantRow) => string;
  onResult?: (t: TenantRow, r: TenantResult) => void;
}

/** Limits are applied to tenants whose placement is whole; others are skipped with the reason. */
const APPLICABLE = new Set(['active', 'suspended']);

/**
 * Apply (or with dryRun only compare) the tier limits of the tenants, one result per tenant in
 * input order. Never throws per tenant.
 *
 * @example
 *   const rows = await applyTierLimits({ config, fleet }, tenants, { concurrency: 8, dryRun: true });
 *   rows.filter((r) => r.changes.length > 0);
 */
export async function applyTierLimits(
  deps: { config: Config; fleet: Fleet },
  tenants: TenantRow[],
  opts: LimitsOptions,
): Promise<LimitsResult[]> {
  const tierOf = opts.tierOf ?? ((t: TenantRow) => t.tier);
  const states = await readStates(
    deps.fleet,
    tenants.filter((t) => APPLICABLE.has(t.status)),
  );
  const base = (t: TenantRow) => ({ tenant: t.slug, tier: tierOf(t), model: t.model, region: t.region, shard: t.shard });
  return fanout<TenantRow, LimitsResult>(
    tenants,
    {
      concurrency: opts.concurrency,
      shardOf: (t) => t.shard,
      shardBudget: (s) => deps.fleet.connections(s).budget,
      onError: 'continue',
      onResult: opts.onResult,
    },
    async (t) => {
      const started = Date.now();
      if (!APPLICABLE.has(t.status)) return { ...base(t), status: 'skipped', reason: `tenant is ${t.status}`, changes: [] };
      // A tier gone from the config: its limits are unknown, not "none" (which would lift them).
      if (!deps.config.tiers[tierOf(t)]) {
        return {
          ...base(t),
          status: 'skipped',
          reason: `tier ${tierOf(t)} is not in the config (tenant set-tier moves it to one that is)`,
          changes: [],
        };
      }
      const changes = await tenantChanges(deps, t, tierOf(t), states);
      if (changes === 'no-role') {
        const opts = sessionOptions(deps.config.tiers[tierOf(t)] ?? {});
        return {
          ...base(t),
          status: 'succeeded',
          changes: [],
          note: opts.length
            ? 'no role of its own: its limits travel in its connection URL (tenantctl resolve)'
            : 'no role of its own and no session limits in its tier',
          durationMs: Date.now() - started,
        };
      }
      if (!opts.dryRun) await applyOne(deps.fleet, t, changes);
      return { ...base(t), status: 'succeeded', changes: changes.map(({ sql: _s, ...c }) => c), durationMs: Date.now() - started };
    },
    (t, reason) => ({ ...base(t), status: 'skipped', reason, changes: [] }),
  );
}

/** The differences of one tenant's placement against a tier, from states read before (or read now). */
export async function tenantChanges(
  deps: { config: Config; fleet: Fleet },
  t: CatalogPlacement,
  tier: string,
  states?: Map<string, LimitState | Error>,
): Promise<LimitChange[] | 'no-role'> {
  const target = limitTarget(t);
  if (!target) return 'no-role';
  let state = states?.get(t.slug);
  if (state === undefined) state = (await readStates(deps.fleet, [t])).get(t.slug);
  return changesFrom(deps.config, t, tier, target, state);
}

/** The differences of one target against a tier, from its state (an error read instead is thrown). */
function changesFrom(
  config: Config,
  t: CatalogPlacement,
  tier: string,
  target: LimitTarget,
  state: LimitState | Error | undefined,
): LimitChange[] {
  if (state instanceof Error) throw state;
  if (!state?.roleExists) throw new Error(`role ${target.role} of tenant ${t.slug} does not exist on shard ${t.shard}`);
  const budget = config.shards.find((s) => s.name === t.shard)?.maxConnections ?? 0;
  return limitChanges(target, desiredLimits(target, config.tiers[tier] ?? {}, budget), state);
}

/** Apply one tenant's changes (one round trip on the shard's maintenance database). */
export async function applyOne(fleet: Fleet, t: CatalogPlacement, changes: LimitChange[]): Promise<void> {
  const target = limitTarget(t) as LimitTarget;
  if (changes.length) await fleet.withClient(t.shard, ADMIN_DATABASE, (c) => applyLimitChanges(c, target, changes));
}

/**
 * Bring one placement of a tenant to its tier's limits now (throws when PostgreSQL refuses
 * one; nothing of them is then changed): a new tenant's before it turns active, and a placement
 * about to take over from another (a restore's fresh placement, a move's target) before the
 * switch, since settings `IN DATABASE` and a database's CONNECTION LIMIT belong to that
 * database, not to the one it replaces, and a role made on another shard has none of them.
 */
export async function applyLimitsTo(deps: { config: Config; fleet: Fleet }, t: CatalogPlacement, tier: string): Promise<void> {
  const target = limitTarget(t);
  if (!target) return;
  // Read and applied on the placement's own database, in one checkout: the catalogs read
  // (pg_roles, pg_database, pg_db_role_setting) and the ALTERs are cluster-wide, and the caller
  // has just built it, so a connection there is in the pool. One to the maintenance database per
  // tenant evicted it: a bulk create of 200 tenants opened 241 connections instead of 19.
  await deps.fleet.withClient(t.shard, t.database_name, async (c) => {
    const state = (await readLimitStates(c, [target])).get(t.slug);
    await applyLimitChanges(c, target, changesFrom(deps.config, t, tier, target, state));
  });
}

/**
 * The limit states of tenants with a role of their own, one query per shard (chunked); a shard
 * that cannot be read gives its tenants the error, so they fail and the rest go on.
 */
async function readStates(fleet: Fleet, tenants: CatalogPlacement[]): Promise<Map<string, LimitState | Error>> {
  const out = new Map<string, LimitState | Error>();
  const byShard = new Map<string, LimitTarget[]>();
  for (const t of tenants) {
    const target = limitTarget(t);
    if (!target) continue;
    const list = byShard.get(t.shard) ?? [];
    list.push(target);
    byShard.set(t.shard, list);
  }
  await Promise.all(
    [...byShard].map(async ([shard, targets]) => {
      try {
        await fleet.withClient(shard, ADMIN_DATABASE, async (c) => {
          for (let i = 0; i < targets.length; i += STATE_CHUNK) {
            for (const [slug, s] of await readLimitStates(c, targets.slice(i, i + STATE_CHUNK))) out.set(slug, s);
          }
        });
      } catch (err) {
        for (const t of targets) out.set(t.slug, err instanceof Error ? err : new Error(String(err)));
      }
    }),
  );
  return out;
}
