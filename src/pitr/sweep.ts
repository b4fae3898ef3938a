import { isProcessAlive } from '../dev/process-alive.js';
import { hostname } from 'node:os';
import type { CatalogDb } from '../catalog/open.js';
import { closeKilledOperation } from '../operations/operation-record.js';
import { clusterOsUser } from '../dev/os-user.js';
import { errorMessage } from '../errors.js';
import { removeScratch } from './scratch.js';

/** The operations kind of a restore to a point in time; its args name its scratch folder. */
export const PITR_RESTORE_KIND = 'pitr-restore';

/** A scratch folder a killed restore left, as the catalog recorded it. */
export interface ScratchLeft {
  operation: number;
  tenant: string | null;
  scratch: string;
  holder: string;
  /** Its process is alive, or it ran on another machine: not ours to remove. */
  live: boolean;
}

/**
 * Scratch clusters the catalog says are in use: a restore to a point in time records its scratch
 * folder before making it. One whose process is gone (on this machine) was
 * killed. `slug`: of one tenant only.
 */
export async function scratchRecords(db: CatalogDb, slug?: string): Promise<ScratchLeft[]> {
  let q = db
    .selectFrom('operations')
    .select(['id', 'tenant_slug', 'holder', 'args'])
    .where('kind', '=', PITR_RESTORE_KIND)
    .where('status', '=', 'running');
  if (slug) q = q.where('tenant_slug', '=', slug);
  const rows = await q.orderBy('id').execute();
  return rows.map((r) => {
    const m = /pid (\d+) on (.+)$/.exec(r.holder);
    const here = m?.[2] === hostname();
    const live = !m || !here || isProcessAlive(Number(m[1]));
    const a = r.args as { scratch?: string };
    return {
      operation: Number(r.id),
      tenant: r.tenant_slug,
      scratch: String(a.scratch ?? ''),
      holder: r.holder,
      live,
    };
  });
}

/**
 * Stop and delete what killed restores to a point in time left (their scratch cluster and
 * folder), closing their records. Run by every `pitr` command,
 * `restore --at`, and the one sweep of every tenant operation (src/operations/sweep/pitr.ts).
 * Returns one line per record swept; one that could not be cleaned stays for the next command.
 */
export async function sweepScratches(db: CatalogDb, slug?: string): Promise<string[]> {
  const notes: string[] = [];
  for (const s of await scratchRecords(db, slug)) {
    if (s.live) continue;
    const note = `restore to a point in time ${s.operation}${s.tenant ? ` of ${s.tenant}` : ''} was killed`;
    try {
      notes.push(await cleanScratch(s, note));
    } catch (err) {
      notes.push(`${note}; what it left could not be removed yet: ${errorMessage(err)}`);
      continue;
    }
    await closeKilledOperation(db, s.operation, notes.at(-1)!);
  }
  return notes;
}

async function cleanScratch(s: ScratchLeft, note: string): Promise<string> {
  if (!s.scratch) return note;
  await removeScratch(s.scratch, await clusterOsUser());
  return `${note}; its scratch cluster ${s.scratch} removed`;
}
