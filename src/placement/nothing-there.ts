import { UsageError } from '../errors.js';
import type { Fleet } from '../fleet/fleet.js';
import { drivers } from './drivers.js';
import type { Placement } from './naming.js';
import { tenantRole } from './placement.js';

/**
 * A new tenant's schema (schema model), database (database model) and role must not exist yet:
 * tenantctl never adopts what it did not make in this tenant's own provisioning (a leftover of a
 * deleted tenant, or someone else's objects would otherwise be taken over silently).
 */
export async function assertNothingThere(fleet: Fleet, t: Placement & { slug: string }): Promise<void> {
  const found = await drivers[t.model].existing(fleet, { ...t, role: tenantRole(t) });
  if (found.length === 0) return;
  throw new UsageError(
    'PLACEMENT_EXISTS',
    `tenant "${t.slug}" is not in the catalog, but ${found.join(' and ')} already exist${found.length === 1 ? 's' : ''} on shard ${t.shard}; tenantctl did not make ${found.length === 1 ? 'it' : 'them'} for this tenant and will not adopt ${found.length === 1 ? 'it' : 'them'}`,
    `inspect and drop ${found.length === 1 ? 'it' : 'them'} yourself if ${found.length === 1 ? 'it is' : 'they are'} leftovers, or pick another slug`,
  );
}
