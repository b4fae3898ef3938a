import type { Config } from '../config/types.js';
import { UsageError } from '../errors.js';
import { listBackups } from './list.js';
import { backupRegions, findBackup, storageFor } from './regions.js';
import type { CatalogDb } from '../catalog/open.js';
import { slugOfPartial, unlockedTenants } from '../operations/unlocked-tenants.js';
import { removeUnlessInUse } from './archive-in-use.js';

export interface PruneOptions {
  keepLast?: number;
  keepDays?: number;
  dryRun?: boolean;
  slug?: string;
  now?: Date;
}

export interface PruneEntry {
  id: string;
  tenant: string;
  region: string;
  createdAt?: string;
  action: 'kept' | 'deleted' | 'would delete';
  reason: string;
}

/**
 * Per tenant: keep its newest `keepLast` backups and every backup younger than `keepDays`
 * days; delete the rest (or only say so with dryRun). With one rule given, only it keeps.
 * Archives whose manifest cannot be read are kept and reported (never deleted blind).
 *
 * @example
 *   await pruneBackups(config, { keepLast: 7, keepDays: 30, dryRun: true })
 */
export function planPrune(
  entries: { id: string; tenant: string; region: string; createdAt?: string; problem?: string }[],
  o: PruneOptions,
): PruneEntry[] {
  if (o.keepLast === undefined && o.keepDays === undefined) {
    throw new UsageError(
      'USAGE',
      'backup prune needs --keep-last N or --keep-days D (or both)',
      'e.g. tenantctl backup prune --keep-last 7 --keep-days 30 --dry-run',
    );
  }
  const now = (o.now ?? new Date()).getTime();
  const byTenant = new Map<string, typeof entries>();
  for (const e of entries) byTenant.set(e.tenant, [...(byTenant.get(e.tenant) ?? []), e]);
  const out: PruneEntry[] = [];
  for (const list of byTenant.values()) {
    // Newest first: ids end with the UTC time, so the id order is the time order.
    const sorted = [...list].sort((a, b) => b.id.localeCompare(a.id));
    // The newest N are counted among the archives that can be restored: a damaged one is kept
    // (never deleted unread) but never takes the place of a good one.
    let i = -1;
    sorted.forEach((e) => {
      const base = { id: e.id, tenant: e.tenant, region: e.region, createdAt: e.createdAt };
      if (e.problem || !e.createdAt) return out.push({ ...base, action: 'kept', reason: `unreadable manifest: ${e.problem ?? 'no date'}` });
      i++;
      const ageDays = (now - Date.parse(e.createdAt)) / 86_400_000;
      if (o.keepLast !== undefined && i < o.keepLast)
        return out.push({ ...base, action: 'kept', reason: `one of the newest ${o.keepLast}` });
      if (o.keepDays !== undefined && ageDays < o.keepDays)
        return out.push({ ...base, action: 'kept', reason: `younger than ${o.keepDays} days` });
      out.push({
        ...base,
        action: o.dryRun ? 'would delete' : 'deleted',
        reason: `older than the rules keep (${ageDays.toFixed(1)} days old, #${i + 1})`,
      });
    });
  }
  return out.sort((a, b) => a.tenant.localeCompare(b.tenant) || a.id.localeCompare(b.id));
}

/**
 * Prune by the rules, and remove the partial folders killed backups left (`.<id>.partial`) of
 * tenants whose lock nobody holds (`catalog` tells; a live backup holds its tenant's lock), so
 * they do not pile up between backups of a tenant that is no longer backed up.
 */
export async function pruneBackups(config: Config, o: PruneOptions, catalog?: () => Promise<CatalogDb>): Promise<PruneEntry[]> {
  const plan = planPrune(await listBackups(config, o.slug), o);
  const db = catalog ? await catalog() : undefined;
  if (!o.dryRun) {
    for (const e of plan) {
      if (e.action !== 'deleted') continue;
      const { storage } = await findBackup(config, e.id);
      const remove = () => storage.remove(e.id);
      // An archive a restore is reading is kept, this time (archive-in-use.ts).
      const removed = db ? await removeUnlessInUse(db, e.id, remove) : (await remove(), true);
      if (!removed) {
        e.action = 'kept';
        e.reason = 'in use: a restore is reading it (the next prune deletes it)';
      }
    }
  }
  return db ? [...plan, ...(await prunePartials(config, db, o))] : plan;
}

async function prunePartials(config: Config, db: CatalogDb, o: PruneOptions): Promise<PruneEntry[]> {
  const out: PruneEntry[] = [];
  for (const region of backupRegions(config)) {
    const storage = storageFor(config, region);
    const found = await storage.partials(o.slug);
    const unlocked = await unlockedTenants(db, [...new Set(found.map(slugOfPartial))]);
    for (const tenant of unlocked) {
      // Only what was listed before the lock check: a backup that starts after it is left alone.
      const mine = found.filter((p) => slugOfPartial(p) === tenant);
      const gone = o.dryRun ? mine : await storage.removePartials(tenant, mine);
      for (const p of gone)
        out.push({
          id: p.slice(tenant.length + 1),
          tenant,
          region,
          action: o.dryRun ? 'would delete' : 'deleted',
          reason: 'left by a killed backup',
        });
    }
  }
  return out;
}
