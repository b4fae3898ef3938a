import type { Config } from '../config/types.js';
import type { Fleet } from '../fleet/fleet.js';
import { drivers } from './drivers.js';
import type { PlacedTenant } from './types.js';

// What a failed or killed build of a placement (restore, its sweep) leaves, removed the way the
// driver's kind needs: shared tables hold the tenant's rows only, a placement of its own goes whole.

/**
 * After a failed build-and-load: remove what it made outside a transaction that rolled back.
 * One transaction (or shared tables, whose rows are loaded in one): only what the driver made
 * outside it (`undoCreate`). Step by step: the placement goes whole, the tenant's role kept when
 * it is a live tenant's (`keepRole`).
 */
export async function undoBuild(
  fleet: Fleet,
  config: Config,
  t: PlacedTenant,
  o: { oneTransaction: boolean; keepRole: boolean },
): Promise<void> {
  const d = drivers[t.model];
  if (o.oneTransaction || d.kind === 'shared-tables') await d.undoCreate(fleet, config, t, { keepRole: o.keepRole });
  else if (o.keepRole) await d.removeKeepingRole(fleet, config, t, { roleStaysInDatabase: true });
  else await d.remove(fleet, config, t);
}

/**
 * A killed build's placement, no tenant's now (the sweep): removed, unless it is in shared
 * tables and its key has become another tenant's (`keyOwner`), whose rows are never touched.
 * `tenantLives`: the slug has a live placement elsewhere, whose role stays.
 */
export async function removeLeftover(
  fleet: Fleet,
  config: Config,
  t: PlacedTenant,
  o: { tenantLives: boolean; keyOwner(): Promise<string | null> },
): Promise<{ keptFor: string } | { removed: 'rows' | 'placement' }> {
  const d = drivers[t.model];
  if (d.kind === 'shared-tables') {
    const owner = await o.keyOwner();
    if (owner) return { keptFor: owner };
    await d.remove(fleet, config, t);
    return { removed: 'rows' };
  }
  if (o.tenantLives) await d.removeKeepingRole(fleet, config, t, { roleStaysInDatabase: true });
  else await d.remove(fleet, config, t);
  return { removed: 'placement' };
}
