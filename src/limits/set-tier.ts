/**
 * `tenant set-tier <slug> <tier>`: the new tier's limits at once, and, when the tier's model is
 * not the tenant's, the move that would bring it there (planned and printed; run through the
 * move engine with `--move`). Recorded as an event.
 *
 * @module
 */
import type { OperationDeps } from '../operations/command-deps.js';
import { recordEvent } from '../catalog/events.js';
import { getTenant, tenantCountsByShard, updateTenant } from '../catalog/tenants.js';
import type { TenantRow } from '../catalog/tables.js';
import { UsageError } from '../errors.js';
import type { MigrationFile } from '../migrate/files.js';
import { planMove, type MovePlan } from '../move/plan.js';
import type { MoveResult } from '../move/run.js';
import { withTenantLock } from '../operations/tenant-lock.js';
import type { LimitChange } from '../placement/limits.js';
import { applyOne, tenantChanges } from './apply.js';

/** The tenant-operation deps, plus the migrations a `--move` builds its target with. */
export type SetTierDeps = OperationDeps & { migrations: MigrationFile[] };

export interface SetTierResult {
  tenant: string;
  from: string;
  to: string;
  /** Limits changed on the tenant's role and database (none for a pool tenant: see resolve). */
  changes: Omit<LimitChange, 'sql'>[];
  /** Where the tenant's limits live now: its own role and database, or (a pool tenant) the URL resolve prints. */
  limitsOn?: 'role' | 'url';
  /** The tier's model differs: where the tenant would go (or went, with --move). */
  movePlan?: { from: MovePlan['from']; to: MovePlan['to']; command: string };
  move?: MoveResult;
}

/**
 * Set a tenant's tier. Refused (exit 2, nothing changed) for an unknown tier, or a model change
 * the move planner refuses (no shard for it in the tenant's region, residency). With `move`, the
 * move runs first; a failed move leaves the tier as it was.
 *
 * @example
 *   const r = await setTier(deps, 'acme', 'enterprise', { move: true });
 *   r.move?.status // 'switched'
 */
export async function setTier(deps: SetTierDeps, slug: string, tier: string, opts: { move?: boolean }): Promise<SetTierResult> {
  const { config } = deps;
  if (!config.tiers[tier]) {
    throw new UsageError('UNKNOWN_TIER', `unknown tier "${tier}"`, `use one of: ${Object.keys(config.tiers).join(', ')}`);
  }
  const t0 = await getTenant(deps.db, slug);
  const model = config.tiers[tier].model;
  let movePlan: SetTierResult['movePlan'];
  if (model !== t0.model) {
    // Pure, before anything changes: a model with no shard in the region, or a residency the
    // region's shards break, is refused here.
    const plan = planMove(config, t0, { toRegion: t0.region, toModel: model }, await tenantCountsByShard(deps.db));
    movePlan = {
      from: plan.from,
      to: plan.to,
      command: `tenantctl move ${slug} --to-shard ${plan.to.shard} --to-model ${model}`,
    };
  }
  let move: MoveResult | undefined;
  if (movePlan && opts.move) {
    const { moveTenant } = await import('../move/run.js');
    move = await moveTenant(
      { config, db: deps.db, fleet: deps.fleet, migrations: deps.migrations, command: deps.command, wait: deps.wait },
      slug,
      { toShard: movePlan.to.shard, toModel: model },
    );
    if (move.status === 'failed') {
      await recordEvent(deps.db, {
        command: deps.command,
        action: 'tier change failed',
        result: 'failed',
        tenant: slug,
        details: { from: t0.tier, to: tier, move: move.error ?? null },
      });
      return { tenant: slug, from: t0.tier, to: tier, changes: [], movePlan, move };
    }
  }
  return withTenantLock(deps.db, slug, { command: deps.command, wait: deps.wait }, async () => {
    const t: TenantRow = await getTenant(deps.db, slug);
    const changes = await tenantChanges(deps, t, tier);
    // One transaction at the shard: a limit PostgreSQL refuses changes nothing, and the catalog
    // keeps the old tier.
    if (changes !== 'no-role') await applyOne(deps.fleet, t, changes);
    const shown = changes === 'no-role' ? [] : changes.map(({ sql: _s, ...c }) => c);
    await deps.db.transaction().execute(async (tx) => {
      await updateTenant(tx, slug, { tier });
      await recordEvent(tx, {
        command: deps.command,
        action: 'tier changed',
        result: 'ok',
        tenant: slug,
        details: {
          from: t0.tier,
          to: tier,
          changes: shown,
          ...(move ? { move: move.move ?? null } : movePlan ? { movePlanned: movePlan.to.target } : {}),
        },
      });
    });
    return {
      tenant: slug,
      from: t0.tier,
      to: tier,
      changes: shown,
      limitsOn: changes === 'no-role' ? 'url' : 'role',
      ...(movePlan ? { movePlan } : {}),
      ...(move ? { move } : {}),
    };
  });
}
