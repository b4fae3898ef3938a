import type { ShardClient } from '../fleet/shard-connections.js';
import { desiredLimits, limitChanges, limitTarget, readLimitStates, type LimitTarget } from '../placement/limits.js';
import { finding } from './registry.js';
import type { AuditEnv, AuditUnit, Finding } from './types.js';

/**
 * Cluster-wide, once per shard: each selected tenant with a role of its own whose connection
 * limit or settings differ from its tier's (issue 19). A tenant role may `ALTER ROLE
 * CURRENT_USER [IN DATABASE …] SET statement_timeout = 0` on itself — PostgreSQL allows a role
 * that for its own session defaults — so this is where such a change shows up;
 * `tenant limits apply` puts the tier back.
 */
export async function limitChecks(c: ShardClient, unit: AuditUnit, env: AuditEnv): Promise<Finding[]> {
  const targets = new Map<string, LimitTarget>();
  for (const t of unit.tenants) {
    const target = t.status === 'active' || t.status === 'suspended' ? limitTarget(t) : null;
    if (target) targets.set(t.slug, target);
  }
  if (targets.size === 0) return [];
  const states = await readLimitStates(c, [...targets.values()]);
  const budget = env.config.shards.find((s) => s.name === unit.shard)?.maxConnections ?? 0;
  const out: Finding[] = [];
  for (const t of unit.tenants) {
    const target = targets.get(t.slug);
    const state = states.get(t.slug);
    if (!target || !state?.roleExists) continue;
    const changes = limitChanges(target, desiredLimits(target, env.config.tiers[t.tier] ?? {}, budget), state);
    if (changes.length === 0) continue;
    out.push(
      finding('role.limits-differ', {
        shard: unit.shard,
        database: unit.database,
        tenant: t.slug,
        object: `role ${target.role}`,
        message: `tenant ${t.slug} (tier ${t.tier}) differs from its tier: ${changes.map((ch) => `${ch.what} ${ch.from ?? '(none)'} instead of ${ch.to ?? '(none)'}`).join('; ')}`,
        fix: `-- tenantctl tenant limits apply --tenant ${t.slug}`,
      }),
    );
  }
  return out;
}
