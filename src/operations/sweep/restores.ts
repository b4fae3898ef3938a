import { findTenant, keyOwner } from '../../catalog/tenants.js';
import { redactText } from '../../config/redact.js';
import { isConnectionLoss } from '../../connection-loss.js';
import { errorMessage, EXIT, TenantctlError } from '../../errors.js';
import { drivers } from '../../placement/drivers.js';
import { removeLeftover as removePlacementLeftover } from '../../placement/leftovers.js';
import { placeLabel } from '../../placement/placement.js';
import type { RestorePlacement } from '../../backup/restore-record.js';
import { sweepKilledReplace, type ReplaceRecord } from '../../backup/replace-switch.js';
import { closeKilledOperation } from '../operation-record.js';
import { runningRecords } from './records.js';
import type { Cleaner, Leftover, SweepDeps } from './types.js';

/**
 * What a killed restore leaves: the placement it recorded before making it (a database tenant's
 * database made outside the load's transaction, or whatever the load committed before the
 * catalog was written: a pool's rows under a key no tenant has, a schema or database nobody
 * owns), removed unless the catalog points at it (the switch committed before the kill). The
 * tenant's role stays when a tenant of that slug exists. A replace that keeps the tenant's names
 * is finished or undone by `sweepKilledReplace` (replace-switch.ts), which also lifts its write
 * fence. The record is closed as failed, naming what was done. A removal that fails is tried
 * again twice (a killed session still ending, a neighbour's GRANT racing the role's drop), then
 * returned `stuck` with PostgreSQL's reason: the record stays running for the tenant's next
 * command, and the sweep stops the command there (sweep.ts), so a restore never goes on to meet
 * the leftover as someone else's (PLACEMENT_EXISTS, which named the role but not why).
 */
export const restoreCleaner: Cleaner = {
  kind: 'restore',
  async find(deps, slug) {
    return (await runningRecords(deps.db, 'restore', slug)).map((op) => {
      const p = (op.args as { placement?: RestorePlacement }).placement;
      return {
        tenant: op.tenant_slug ?? '',
        kind: 'restore',
        operation: Number(op.id),
        what: `restore ${op.id} still running${p ? ` (its placement ${placeLabel(p)})` : ''}`,
      };
    });
  },
  async clean(deps, slug, except) {
    const cleaned: Leftover[] = [];
    for (const op of await runningRecords(deps.db, 'restore', slug)) {
      if (Number(op.id) === except) continue;
      const args = op.args as Partial<ReplaceRecord>;
      const { placement: p, replaced } = args;
      let note = `restore ${op.id} of ${slug} was killed`;
      try {
        const removed = await retried(() =>
          args.away && args.fence && p && replaced
            ? sweepKilledReplace(deps, slug, args as ReplaceRecord)
            : p
              ? removeLeftover(deps, slug, p, replaced)
              : Promise.resolve(undefined),
        );
        if (removed) note += `; ${removed}`;
      } catch (err) {
        // Left running: the tenant's next command tries again; the operator sees why now.
        if (isConnectionLoss(err)) throw err;
        const what = `${note}, and what it left${p ? ` (its placement ${placeLabel(p)})` : ''} could not be removed: ${redactText(errorMessage(err))}`;
        const stuck = new TenantctlError(
          'SWEEP_INCOMPLETE',
          `${what}; nothing else was done`,
          `fix the cause PostgreSQL names (the object, or the session that holds it), then run the command again: it tries the removal first (tenantctl doctor lists restore ${op.id} until then)`,
          EXIT.failed,
          { cause: err },
        );
        cleaned.push({ tenant: slug, kind: 'restore', operation: Number(op.id), what, stuck });
        continue;
      }
      await closeKilledOperation(deps.db, Number(op.id), note);
      cleaned.push({ tenant: slug, kind: 'restore', operation: Number(op.id), what: note });
    }
    return cleaned;
  },
};

async function removeLeftover(deps: SweepDeps, slug: string, p: RestorePlacement, replaced?: RestorePlacement): Promise<string> {
  const { db, fleet, config } = deps;
  const where = placeLabel(p);
  const live = await findTenant(db, slug);
  if (live && samePlace(live, p)) {
    // The switch committed: what is left is the replaced placement, if it was another one.
    if (!replaced || samePlace(replaced, p)) return `the catalog already points at ${where}: kept`;
    await drivers[replaced.model].removeKeepingRole(fleet, config, { slug, ...replaced }, { roleStaysInDatabase: true });
    return `the catalog already points at ${where}: kept; the replaced ${placeLabel(replaced)} removed`;
  }
  const out = await removePlacementLeftover(
    fleet,
    config,
    { slug, ...p },
    {
      tenantLives: live !== undefined,
      // Rows under a key that no tenant has are the killed load's; a tenant's own are never touched.
      keyOwner: () => keyOwner(db, p.key),
    },
  );
  if ('keptFor' in out) return `key ${p.key} belongs to tenant "${out.keptFor}": its rows in ${where} kept`;
  return out.removed === 'rows' ? `rows of key ${p.key} in ${where} removed` : `${where} removed`;
}

function samePlace(a: { shard: string; database_name: string; schema_name: string }, b: RestorePlacement): boolean {
  return a.shard === b.shard && a.database_name === b.database_name && a.schema_name === b.schema_name;
}

/**
 * Each step of a removal is idempotent: run it again after 0.5 s and 1.5 s before giving up. A
 * lost shard is not waited for (SHARD_LOST names it).
 */
async function retried<T>(f: () => Promise<T>): Promise<T> {
  for (const wait of [500, 1500, -1]) {
    try {
      return await f();
    } catch (err) {
      if (wait < 0 || isConnectionLoss(err)) throw err;
      await new Promise((r) => setTimeout(r, wait));
    }
  }
  throw new Error('unreachable');
}
