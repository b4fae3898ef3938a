import { readdir, stat } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { TenantctlError } from '../errors.js';
import { faultPoint } from '../operations/fault-points.js';
import type { OperationRecord } from '../operations/operation-record.js';
import { human } from './disk.js';
import { pgbackrestOk } from './pgbackrest.js';
import type { PhaseClock } from './phase-clock.js';
import type { Preflight } from './preflight.js';
import { makeScratch, startScratch, waitRecovered, type Recovery, type Scratch } from './scratch.js';

/** A scratch cluster recovered to the target time and paused there, and what it took. */
export interface Recovered {
  scratch: Scratch;
  port: number;
  rec: Recovery;
  /** What pgBackRest restored into the scratch folder. */
  restoredBytes: number;
}

/**
 * pgBackRest restores the tenant's shard (only the tenant's database: --db-include) into the
 * scratch folder `dir`, with as many processes as the machine has cores (up to 4); the scratch
 * cluster starts on a port the OS picked and replays WAL to `at`, where it pauses: a paused hot
 * standby is read as it was at `at`, without the end-of-recovery checkpoint a promotion costs.
 * `made` is called as soon as the folder exists (the caller removes it on every way out).
 */
export async function recoverScratch(
  p: Preflight,
  at: Date,
  dir: string,
  clock: PhaseClock,
  op: OperationRecord,
  made: (s: Scratch) => void,
): Promise<Recovered> {
  const t = p.tenant;
  const scratch = await makeScratch(dir, p.user);
  made(scratch);
  clock.mark('pgBackRest restore', `shard ${t.shard}, database ${t.database_name}, about ${human(p.need)}`);
  await op.phase('pgbackrest restore');
  const args = [
    `--stanza=${t.shard}`,
    `--pg1-path=${scratch.pgdata}`,
    `--process-max=${Math.min(4, availableParallelism())}`,
    '--type=time',
    `--target=${pgbackrestTime(at)}`,
    '--target-action=pause',
    '--archive-mode=off',
  ];
  try {
    await pgbackrestOk(p.repo, p.user, [...args, `--db-include=${t.database_name}`, 'restore'], 'restore');
  } catch (err) {
    // A database made after the base backup pgBackRest picked (a new database tenant, a restored
    // one, the first schema tenant of a shard) is not in its manifest: --db-include refuses it
    // ("database to include … does not exist"), though the WAL to `at` holds it whole. The whole
    // shard then, over what the first try left (--delta).
    if (!(err instanceof TenantctlError) || !/database to include .* does not exist/.test(err.message)) throw err;
    clock.mark('pgBackRest restore', `shard ${t.shard} whole: ${t.database_name} was made after the base backup`);
    await pgbackrestOk(p.repo, p.user, [...args, '--delta', 'restore'], 'restore');
  }
  const restoredBytes = await folderBytes(scratch.pgdata);
  clock.mark('recovery', `restored ${human(restoredBytes)}; replaying WAL to ${at.toISOString()}`);
  await op.phase('recovery', { restoredBytes });
  const port = await startScratch(scratch, p.standby);
  await faultPoint('pitr.recovery');
  const rec = await waitRecovered(scratch, scratchUrl(p.shard.url, port, 'postgres'), (r) => {
    if (r.walBytes) clock.mark('recovery', `replayed ${human(r.walBytes)} of WAL`);
  });
  if (rec.invalidPages.includes(t.dbOid))
    throw new TenantctlError(
      'PITR_FAILED',
      `recovery found invalid page references in ${t.database_name} itself (see the scratch cluster's log): its restored copy cannot be trusted`,
    );
  return { scratch, port, rec, restoredBytes };
}

/** `2026-12-05 14:00:00.000+00`: the time format pgBackRest's --target takes (ISO's T and Z it refuses). */
export function pgbackrestTime(at: Date): string {
  return at.toISOString().replace('T', ' ').replace('Z', '+00');
}

/** The shard's url pointed at the scratch cluster (same role and password: they were restored with it). */
export function scratchUrl(shardUrl: string, port: number, database?: string): string {
  const u = new URL(shardUrl);
  u.hostname = '127.0.0.1';
  u.port = String(port);
  if (database) u.pathname = `/${database}`;
  return u.toString();
}

async function folderBytes(dir: string): Promise<number> {
  let n = 0;
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) n += (await stat(join(e.parentPath ?? e.path, e.name)).catch(() => ({ blocks: 0 }))).blocks * 512;
  }
  return n;
}
