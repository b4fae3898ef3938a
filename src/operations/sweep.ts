import { LockedError } from '../errors.js';
import { withTenantLock } from './tenant-lock.js';
import { unlockedTenants } from './unlocked-tenants.js';
import { backupCleaner } from './sweep/backups.js';
import { killedRecordCleaner } from './sweep/killed-records.js';
import { moveCleaner } from './sweep/moves.js';
import { restoreCleaner } from './sweep/restores.js';
import { pitrCleaner } from './sweep/pitr.js';
import type { Cleaner, Leftover, SweepDeps } from './sweep/types.js';

export type { Leftover, SweepDeps } from './sweep/types.js';

/**
 * One cleaner per kind of operation that leaves something when its process dies. A new kind of
 * operation that makes things outside one transaction adds its cleaner here (and nowhere else).
 */
const CLEANERS: Cleaner[] = [backupCleaner, restoreCleaner, moveCleaner, pitrCleaner, killedRecordCleaner];

/**
 * The ONE crash sweep, for one tenant: what killed operations of it left (unpublished archives,
 * fences, copies and half-built placements, replication or capture objects, `running` records)
 * is cleaned, each kind by its cleaner. Every operation runs it first, under the tenant's lock
 * (so no live operation of the tenant exists besides the caller's own, `except`, when it already
 * recorded itself). Only this tenant's things are touched: a neighbour's rows, placement and
 * records are never read as leftovers. Returns what was cleaned, for the result's warnings. A
 * leftover that could not be cleaned (`stuck`) stays recorded for the tenant's next command, and
 * stops this one with its reason (SWEEP_INCOMPLETE, nothing else done): what the command would
 * make could meet it. With `tolerateStuck` (a backup, which only reads the tenant's live
 * placement) it is one more warning instead, so a nightly backup still runs.
 *
 * @example
 *   const swept = await sweepTenant(deps, tenant) // [{ kind: 'backup', what: 'acme/.acme.2026….partial of a killed backup …' }]
 */
export async function sweepTenant(
  deps: SweepDeps,
  t: { slug: string },
  o: { except?: number; tolerateStuck?: boolean } = {},
): Promise<Leftover[]> {
  const out: Leftover[] = [];
  for (const c of CLEANERS) out.push(...(await c.clean(deps, t.slug, o.except)));
  const stuck = out.find((l) => l.stuck);
  if (stuck?.stuck && !o.tolerateStuck) throw stuck.stuck;
  return out;
}

/** Every cleaner's finding fleet-wide, of tenants whose lock nobody holds (a live operation's are not leftovers). */
async function findFleet(deps: SweepDeps): Promise<Leftover[]> {
  const found = (await Promise.all(CLEANERS.map((c) => c.find(deps)))).flat();
  const unlocked = await unlockedTenants(deps.db, [...new Set(found.map((f) => f.tenant))]);
  return found.filter((f) => unlocked.has(f.tenant));
}

/**
 * Only the records a killed create, delete, suspend, resume or credentials left (the sweep of the
 * operations that run no full sweep first): what was closed, for the result's warnings.
 */
export async function sweepRecords(deps: SweepDeps, slug: string): Promise<string[]> {
  return (await killedRecordCleaner.clean(deps, slug)).map((l) => l.what);
}

/**
 * The sweep fleet-wide: with `dryRun`, what it would clean (doctor lists it); else each tenant
 * with leftovers swept under its lock. A tenant whose lock is taken meanwhile is left for its own
 * operation (which sweeps it first), and reported as such.
 */
export async function sweepFleet(
  deps: SweepDeps,
  o: { dryRun: boolean },
): Promise<{ found: Leftover[]; cleaned: Leftover[]; busy: string[] }> {
  const found = await findFleet(deps);
  if (o.dryRun) return { found, cleaned: [], busy: [] };
  const cleaned: Leftover[] = [];
  const busy: string[] = [];
  for (const slug of [...new Set(found.map((f) => f.tenant))]) {
    try {
      const swept = await withTenantLock(deps.db, slug, { command: deps.command }, () =>
        sweepTenant(deps, { slug }, { tolerateStuck: true }),
      );
      cleaned.push(...swept);
    } catch (err) {
      if (!(err instanceof LockedError)) throw err;
      busy.push(slug);
    }
  }
  return { found, cleaned, busy };
}

/** The leftovers as one doctor check (ok when there are none). */
export async function sweepCheck(deps: SweepDeps): Promise<{ check: string; ok: boolean; detail: string }> {
  const { found } = await sweepFleet(deps, { dryRun: true });
  const tenants = [...new Set(found.map((f) => f.tenant))];
  // A restore killed before it registered its new tenant: no backup or move of that slug can run,
  // only the same restore again cleans it.
  const known = tenants.length
    ? new Set((await deps.db.selectFrom('tenants').select('slug').where('slug', 'in', tenants).execute()).map((r) => r.slug))
    : new Set<string>();
  const notYet = tenants.filter((t) => !known.has(t));
  return {
    check: 'killed operations',
    ok: found.length === 0,
    detail: found.length
      ? `${found.map((f) => `${f.tenant}: ${f.what}`).join('; ')} (the next command of ${tenants.length === 1 ? 'that tenant' : 'each tenant'} cleans them: any backup, restore or move of it${
          notYet.length
            ? `; ${notYet.join(', ')} ${notYet.length === 1 ? 'is' : 'are'} not a tenant yet: run ${notYet.length === 1 ? 'its' : 'each'} killed restore again (the same tenantctl restore <backup> --as <slug>)`
            : ''
        })`
      : 'nothing left by killed backups, restores or moves',
  };
}
