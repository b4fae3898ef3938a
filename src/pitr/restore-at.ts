import type { Manifest } from '../backup/manifest.js';
import { redactText } from '../config/redact.js';
import { errorMessage } from '../errors.js';
import { startOperation } from '../operations/operation-record.js';
import { restoreArchive } from '../backup/restore-run.js';
import type { RestoreResult } from '../backup/restore.js';
import { human } from './disk.js';
import { PhaseClock, type PitrPhase } from './phase-clock.js';
import type { RestoreAtDeps, RestoreAtOptions, RestoreAtResult } from './restore-at-types.js';
import { preflight } from './preflight.js';
import { recoverScratch, scratchUrl, type Recovered } from './recover.js';
import { removeScratch, scratchPath, type Scratch } from './scratch.js';
import { openScratchSource, type ScratchSource } from './scratch-source.js';
import { PITR_RESTORE_KIND, sweepScratches } from './sweep.js';

export type { PitrPhase } from './phase-clock.js';
export type { RestoreAtDeps, RestoreAtOptions, RestoreAtResult } from './restore-at-types.js';

/**
 * Bring one tenant back to a point in time, nobody else: pgBackRest restores the tenant's shard
 * (only the tenant's database: --db-include) into a scratch folder, the scratch cluster (on a
 * port the OS picked) replays WAL to `at` and pauses there (recover.ts); the tenant is read there
 * (scratch-source.ts: its shape and each table's digest, in PostgreSQL) and its rows are streamed
 * by COPY straight into the backup restore's load (src/backup/restore-run.ts, restoreArchive): a
 * new tenant with a new key (`as`), or in place (`replace`: safety backup, fence, switch), checked
 * against the scratch cluster's digests. No interim archive: every row leaves it once. The scratch
 * cluster and its folder are removed once the last table has streamed, on every way out, and by
 * the next command after a kill (sweep.ts: the operation's record names the folder before it
 * exists). Bad input is exit 2 before anything starts (preflight.ts).
 *
 * @example
 *   await restoreAt(deps, { slug: 'acme', at: new Date('2026-12-05T14:00:00Z'), replace: true });
 */
export async function restoreAt(deps: RestoreAtDeps, o: RestoreAtOptions): Promise<RestoreAtResult> {
  const swept = await sweepScratches(deps.db);
  const p = await preflight(deps, o);
  const t = p.tenant;
  const clock = new PhaseClock(deps.onPhase);
  const dir = scratchPath(p.repo.scratchRoot);
  // Recorded before the folder exists: a kill at any point leaves a record the next command sweeps.
  const op = await startOperation(deps.db, {
    kind: PITR_RESTORE_KIND,
    tenant: t.slug,
    args: { at: o.at.toISOString(), scratch: dir, shard: t.shard, region: t.region },
  });
  let scratch: Scratch | undefined;
  let source: ScratchSource | undefined;
  let stopping: Promise<unknown> = Promise.resolve();
  // The last table has streamed: the scratch cluster stops and goes while the load verifies and switches.
  const drained = () => {
    const s = source;
    scratch = undefined;
    stopping = (async () => {
      await s?.close();
      await removeScratch(dir, p.user);
    })().catch(() => undefined);
  };
  try {
    const r = await recoverScratch(p, o.at, dir, clock, op, (s) => (scratch = s));
    clock.mark('extract', `reached ${r.rec.reached ?? 'the target'}; replayed ${human(r.rec.walBytes)} of WAL`);
    await op.phase('extract', { walBytes: r.rec.walBytes });
    const id = `${t.slug} at ${o.at.toISOString()}`;
    source = await openScratchSource(deps.config, t, scratchUrl(p.shard.url, r.port, t.database_name), id, drained);
    const m = source.archive.manifest;
    clock.mark('load, verify', `${source.tables} tables, streamed from the scratch cluster`);
    await op.phase('load', { tables: source.tables });
    const loaded = await restoreArchive(
      { ...deps, onProgress: (q) => clock.mark('load, verify', `${q.rows} of ${q.total ?? '?'} rows`) },
      source.archive,
      { as: o.as, replace: o.replace, shard: o.shard, model: o.model },
    );
    if (loaded.replaced) clock.mark('switch', `switched; writes refused ${loaded.writesRefusedMs ?? 0} ms`);
    const phases = clock.done();
    await op.finish(loaded.status === 'succeeded' ? 'succeeded' : 'failed', { rows: loaded.rows, reached: r.rec.reached });
    return report(o, loaded, r, m, p.window, phases, swept);
  } catch (err) {
    await op.finish('failed', { error: redactText(errorMessage(err)) }).catch(() => undefined);
    throw err;
  } finally {
    await source?.close();
    await stopping;
    if (scratch) await removeScratch(dir, p.user).catch(() => undefined);
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
