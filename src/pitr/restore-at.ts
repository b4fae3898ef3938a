import type { Manifest } from '../backup/manifest.js';
import { redactText } from '../config/redact.js';
import { errorMessage } from '../errors.js';
import { startOperation } from '../operations/operation-record.js';
import { restoreBackup } from '../backup/restore-run.js';
import type { RestoreResult } from '../backup/restore.js';
import { storageFor } from '../backup/regions.js';
import { newBackupId } from '../backup/storage.js';
import { human } from './disk.js';
import { extractFromScratch } from './extract.js';
import { PhaseClock, type PitrPhase } from './phase-clock.js';
import type { RestoreAtDeps, RestoreAtOptions, RestoreAtResult } from './restore-at-types.js';
import { preflight } from './preflight.js';
import { recoverScratch, type Recovered } from './recover.js';
import { removeScratch, scratchPath, type Scratch } from './scratch.js';
import { PITR_RESTORE_KIND, sweepScratches } from './sweep.js';

export type { PitrPhase } from './phase-clock.js';
export type { RestoreAtDeps, RestoreAtOptions, RestoreAtResult } from './restore-at-types.js';

/**
 * Bring one tenant back to a point in time, nobody else: pgBackRest restores the tenant's shard
 * (only the tenant's database: --db-include) into a scratch folder, the scratch cluster (on a
 * port the OS picked) replays WAL to `at` and pauses there (recover.ts); the tenant is extracted
 * from it with the backup engine into an interim archive (extract.ts) and loaded by the backup
 * restore (src/backup/restore.ts): a new tenant with a new key (`as`), or in place (`replace`:
 * safety backup, fence, switch). The scratch cluster, its folder and the interim archive are
 * removed on every way out, and by the next command after a kill (sweep.ts: the operation's
 * record names all three before they exist). Bad input is exit 2 before anything starts
 * (preflight.ts).
 *
 * @example
 *   await restoreAt(deps, { slug: 'acme', at: new Date('2026-12-05T14:00:00Z'), replace: true });
 */
export async function restoreAt(deps: RestoreAtDeps, o: RestoreAtOptions): Promise<RestoreAtResult> {
  const swept = await sweepScratches(deps.db, deps.config);
  const p = await preflight(deps, o);
  const t = p.tenant;
  const clock = new PhaseClock(deps.onPhase);
  const dir = scratchPath(p.repo.scratchRoot);
  const storage = storageFor(deps.config, t.region);
  const interim = newBackupId(t.slug);
  // Recorded before the folder and the archive exist: a kill at any point leaves a record the next command sweeps.
  const op = await startOperation(deps.db, {
    kind: PITR_RESTORE_KIND,
    tenant: t.slug,
    args: { at: o.at.toISOString(), scratch: dir, shard: t.shard, region: t.region, interim },
  });
  let scratch: Scratch | undefined;
  let stopping: Promise<unknown> = Promise.resolve();
  try {
    const r = await recoverScratch(p, o.at, dir, clock, op, (s) => (scratch = s));
    clock.mark('extract', `reached ${r.rec.reached ?? 'the target'}; replayed ${human(r.rec.walBytes)} of WAL`);
    await op.phase('extract', { walBytes: r.rec.walBytes });
    const x = await extractFromScratch(deps, t, r.port, interim, clock);
    // The rows are in the archive: the scratch cluster stops and goes while the load runs.
    stopping = removeScratch(dir, p.user).catch(() => undefined);
    scratch = undefined;
    clock.mark('load, verify', `${x.rows} rows in ${x.manifest.tables.length} tables`);
    await op.phase('load', { rows: x.rows });
    const loaded = await restoreBackup(
      { ...deps, onProgress: (q) => clock.mark('load, verify', `${q.rows} of ${q.total ?? '?'} rows`) },
      { backup: interim, as: o.as, replace: o.replace, shard: o.shard, model: o.model },
    );
    if (loaded.replaced) clock.mark('switch', `switched; writes refused ${loaded.writesRefusedMs ?? 0} ms`);
    const phases = clock.done();
    await op.finish(loaded.status === 'succeeded' ? 'succeeded' : 'failed', { rows: loaded.rows, reached: r.rec.reached });
    return report(o, loaded, r, x.manifest, p.window, phases, swept);
  } catch (err) {
    await op.finish('failed', { error: redactText(errorMessage(err)) }).catch(() => undefined);
    throw err;
  } finally {
    await stopping;
    if (scratch) await removeScratch(dir, p.user).catch(() => undefined);
    // The interim archive is the scratch cluster's copy of the tenant, not a backup anyone took.
    if (await storage.has(interim).catch(() => false)) await storage.remove(interim).catch(() => undefined);
  }
}

function report(
  o: RestoreAtOptions,
  r: RestoreResult,
  rec: Recovered,
  manifest: Manifest,
  window: { from: string; to: string },
  phases: { phase: PitrPhase; ms: number }[],
  swept: string[],
): RestoreAtResult {
  const at = o.at.toISOString();
  return {
    ...r,
    backup: `${o.slug} at ${at}`,
    at,
    reached: rec.rec.reached,
    walReplayedBytes: rec.rec.walBytes,
    restoredBytes: rec.restoredBytes,
    window,
    tables: manifest.tables.map((x) => ({ table: x.table, rows: x.rows })),
    verification:
      r.status === 'succeeded'
        ? `every table's row count and hash equal the scratch cluster's at ${rec.rec.reached ?? at}; foreign keys checked ${r.foreignKeys ?? ''}`.trim()
        : 'not verified: the load failed',
    phases,
    ...(swept.length ? { warnings: [...swept, ...(r.warnings ?? [])] } : {}),
  };
}
