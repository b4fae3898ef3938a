import { randomBytes } from 'node:crypto';
import { findTenant, updateTenant } from '../catalog/tenants.js';
import type { TenantRow } from '../catalog/tables.js';
import { redactText } from '../config/redact.js';
import { errorMessage } from '../errors.js';
import { drivers, type PlacedTenant } from '../placement/drivers.js';
import { placementBeside } from '../placement/placement.js';
import { placementSwapped, reopenPlacement, swapPlacement, type PlacementNames, type SwapOutcome } from '../placement/swap.js';
import { liftReplaceFence, type ReplaceFence } from './replace-fence.js';
import type { CatalogDb } from '../catalog/open.js';
import type { Config } from '../config/types.js';
import type { Fleet } from '../fleet/fleet.js';
import type { RestorePlacement } from './types.js';

/** What the switch and its sweep use. */
interface SwitchDeps {
  db: CatalogDb;
  fleet: Fleet;
  config: Config;
}

/**
 * Where a replace builds and where the replaced placement goes: `fresh` (the live placement's
 * names with `__r<hex>`, built and loaded there) and `away` (`__o<hex>`, the replaced placement's
 * names after the switch, until it is dropped). `away` is null for a tenant in shared tables,
 * whose rows are swapped in place by the load's one transaction.
 */
export function replaceNames(live: TenantRow): { fresh: PlacedTenant; away: PlacementNames | null } {
  const hex = randomBytes(3).toString('hex');
  const beside = placementBeside(live, `__r${hex}`);
  return { fresh: { ...live, ...beside }, away: placementBeside(live, `__o${hex}`) };
}

/**
 * The switch of a replace whose fresh placement is built and loaded: under the tenant's own
 * names from here (src/placement/swap.ts), the replaced one under `away`. Nothing to do for a
 * tenant in shared tables (the load's commit was its switch). Throws when nothing was switched.
 */
export async function switchToFresh(
  deps: SwitchDeps,
  live: TenantRow,
  fresh: PlacedTenant,
  away: PlacementNames | null,
): Promise<SwapOutcome> {
  if (!away) return { endedSessions: 0, unreachableMs: 0, warnings: [] };
  return swapPlacement(deps.fleet, live, fresh, away);
}

/** Did a replace's switch commit (also when the step reporting it failed afterwards)? */
export async function switchCommitted(deps: SwitchDeps, live: TenantRow, away: PlacementNames | null): Promise<boolean> {
  return away ? placementSwapped(deps.fleet, live, away).catch(() => false) : false;
}

/** Drop the replaced placement, now under its away names (the tenant's role stays: it is the restored placement's too). */
export async function dropReplaced(deps: SwitchDeps, live: PlacedTenant, away: PlacementNames): Promise<void> {
  await drivers[live.model].removeKeepingRole(deps.fleet, deps.config, { ...live, ...away }, { roleStaysInDatabase: true });
}

/** What a replace records in its operations row besides its fresh placement (the sweep, src/operations/sweep/restores.ts, reads it back). */
export interface ReplaceRecord {
  placement: RestorePlacement;
  replaced: RestorePlacement;
  away: PlacementNames;
  fence: ReplaceFence;
  /** The catalog's schema version once switched. */
  version: string | null;
}

/**
 * A killed `restore --replace` of a tenant with names of its own (run under the tenant lock, by
 * the next restore of it). The switch is one commit, so its side is known from the names:
 *  - switched (the replaced placement is under its away names): that placement is dropped, and
 *    the catalog's version written if the kill came before it was;
 *  - not switched: the fresh placement is removed, the fence on the live placement lifted and
 *    its role's CONNECT given back (a kill during a database rename).
 * Returns what was done, for the restore's warnings.
 */
export async function sweepKilledReplace(deps: SwitchDeps, slug: string, r: ReplaceRecord): Promise<string> {
  const { db, fleet, config } = deps;
  const live: PlacedTenant = { slug, ...r.replaced };
  const here = `${r.replaced.shard}/${r.replaced.database_name}/${r.replaced.schema_name}`;
  if (await placementSwapped(fleet, live, r.away)) {
    await dropReplaced(deps, live, r.away);
    const t = await findTenant(db, slug);
    if (t && t.schema_version !== r.version) await updateTenant(db, slug, { schema_version: r.version });
    return `it had switched: ${here} is the restored placement; the replaced one (${r.away.database_name}/${r.away.schema_name}) removed`;
  }
  await drivers[live.model].removeKeepingRole(fleet, config, { slug, ...r.placement }, { roleStaysInDatabase: true });
  await liftReplaceFence(fleet, r.fence);
  await reopenPlacement(fleet, live);
  return `it had not switched: ${here} is as before, its write fence lifted; the unfinished ${r.placement.database_name}/${r.placement.schema_name} removed`;
}

/** A failure to drop the replaced placement, as a warning: it is fenced and its sessions ended, so nothing is written there. */
export function dropWarning(live: PlacedTenant, away: PlacementNames, err: unknown): string {
  return (
    `the replaced placement ${live.shard}/${away.database_name}/${away.schema_name} could not be dropped: ${redactText(errorMessage(err))}; ` +
    'its writes are refused and its sessions ended; drop it when its sessions are gone'
  );
}
