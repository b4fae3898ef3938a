import { closeKilledOperation } from '../operations/operation-record.js';
import { findTenant } from '../catalog/tenants.js';
import { redactText } from '../config/redact.js';
import { errorMessage } from '../errors.js';
import { drivers, type PlacedTenant } from '../placement/drivers.js';
import { MODEL_TRAITS } from '../placement/placement.js';
import type { RestoreDeps, RestorePlacement } from './types.js';
import { sweepKilledReplace, type ReplaceRecord } from './replace-switch.js';
import { placeLabel } from '../placement/placement.js';

/**
 * Run under the tenant's lock, before a restore of that tenant: a restore of it that the catalog
 * still shows as running was killed (a live one would hold the lock). Its placement is removed
 * unless the catalog points at it (the switch committed before the kill): a database tenant's
 * database made outside the load's transaction, or whatever the load committed before the
 * catalog was written (a pool's rows with a key no tenant has, a schema or database nobody
 * owns). The tenant's role stays when a tenant of that slug exists. A replace that keeps the
 * tenant's names is finished or undone by `sweepKilledReplace` (replace-switch.ts), which also
 * lifts its write fence. The record is closed as failed, naming what was done. Returns one line per record, for the result's warnings.
 */
export async function sweepKilledRestores(deps: RestoreDeps, slug: string): Promise<string[]> {
  const { db } = deps;
  const ops = await db
    .selectFrom('operations')
    .select(['id', 'args'])
    .where('kind', '=', 'restore')
    .where('tenant_slug', '=', slug)
    .where('status', '=', 'running')
    .execute();
  const notes: string[] = [];
  for (const op of ops) {
    const args = op.args as Partial<ReplaceRecord>;
    const { placement: p, replaced } = args;
    let note = `restore ${op.id} of ${slug} was killed`;
    try {
      // A replace that keeps the tenant's names (it records where the replaced placement goes).
      if (args.away && args.fence && p && replaced) note += `; ${await sweepKilledReplace(deps, slug, args as ReplaceRecord)}`;
      else if (p) note += `; ${await removeLeftover(deps, slug, p, replaced)}`;
    } catch (err) {
      // Left running: the next restore tries again; the operator sees why.
      notes.push(`${note}; its placement could not be removed yet: ${redactText(errorMessage(err))}`);
      continue;
    }
    await closeKilledOperation(db, op.id, note);
    notes.push(note);
  }
  return notes;
}

async function removeLeftover(deps: RestoreDeps, slug: string, p: RestorePlacement, replaced?: RestorePlacement): Promise<string> {
  const { db, fleet, config } = deps;
  const where = placeName(p);
  const live = await findTenant(db, slug);
  if (live && samePlace(live, p)) {
    // The switch committed: what is left is the replaced placement, if it was another one.
    if (!replaced || samePlace(replaced, p)) return `the catalog already points at ${where}: kept`;
    await drivers[replaced.model].removeKeepingRole(fleet, config, { slug, ...replaced }, { roleStaysInDatabase: true });
    return `the catalog already points at ${where}: kept; the replaced ${placeName(replaced)} removed`;
  }
  const placed: PlacedTenant = { slug, ...p };
  if (MODEL_TRAITS[p.model].sharedTables) {
    // Rows under a key that no tenant has are the killed load's; a tenant's own are never touched.
    const owner = await db.selectFrom('tenants').select('slug').where('key', '=', p.key).executeTakeFirst();
    if (owner) return `key ${p.key} belongs to tenant "${owner.slug}": its rows in ${where} kept`;
    await drivers[p.model].remove(fleet, config, placed);
    return `rows of key ${p.key} in ${where} removed`;
  }
  if (live) await drivers[p.model].removeKeepingRole(fleet, config, placed, { roleStaysInDatabase: true });
  else await drivers[p.model].remove(fleet, config, placed);
  return `${where} removed`;
}

function samePlace(a: { shard: string; database_name: string; schema_name: string }, b: RestorePlacement): boolean {
  return a.shard === b.shard && a.database_name === b.database_name && a.schema_name === b.schema_name;
}

function placeName(p: RestorePlacement): string {
  return placeLabel(p);
}
export type { RestorePlacement } from './types.js';
