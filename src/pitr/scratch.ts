import { randomBytes } from 'node:crypto';
import { chmod, chown, mkdir, readFile, rm } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import pg from 'pg';
import { clusterStatus, runAs } from '../dev/cluster.js';
import { findBinaries } from '../dev/binaries.js';
import type { OsUser } from '../dev/os-user.js';
import { TenantctlError, UsageError } from '../errors.js';

/**
 * A scratch cluster: a shard restored by pgBackRest into a folder of its own (`tenantctl-pitr-*`,
 * mode 0700, owned by the OS user PostgreSQL runs as), served on a port the OS picked, on the
 * loopback address only. Nothing of it is fixed: two restores never share one.
 */
export interface Scratch {
  dir: string;
  /** The restored data directory, inside dir. */
  pgdata: string;
  log: string;
  user: OsUser | undefined;
  port?: number;
}

/** Name prefix of scratch folders; the sweep never touches any other folder. */
export const SCRATCH_PREFIX = 'tenantctl-pitr-';

/** A fresh scratch folder's path under root (recorded in the catalog before it is made). */
export function scratchPath(root: string): string {
  return join(root, `${SCRATCH_PREFIX}${randomBytes(6).toString('hex')}`);
}

/** Make the scratch folder, readable only by PostgreSQL's OS user (which tenantctl runs it as). */
export async function makeScratch(dir: string, user: OsUser | undefined): Promise<Scratch> {
  await mkdir(dirname(dir), { recursive: true });
  await mkdir(dir, { mode: 0o700 });
  const pgdata = join(dir, 'pgdata');
  await mkdir(pgdata, { mode: 0o700 });
  for (const d of [dir, pgdata]) {
    await chmod(d, 0o700);
    if (user) await chown(d, user.uid, user.gid);
  }
  return { dir, pgdata, log: join(dir, 'server.log'), user };
}

/** A port the kernel says is free now (it picks it: never a fixed one). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port: 0 }, () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/**
 * Start the restored cluster: archiving off (it must never push into the shard's repository),
 * hot standby on (recovery pauses at the target and the tenant is read from the paused standby:
 * no promotion, no end-of-recovery checkpoint; `standby`: the shard's settings a standby must
 * match, preflight.ts), the socket inside its folder, 127.0.0.1 only. Does not wait: recovery can
 * take long (see waitRecovered).
 */
export async function startScratch(s: Scratch, standby: Record<string, string> = {}): Promise<number> {
  const bin = await findBinaries();
  const port = await freePort();
  s.port = port;
  const settings = [
    `-p ${port}`,
    '-k .',
    '-c listen_addresses=127.0.0.1',
    '-c archive_mode=off',
    '-c hot_standby=on',
    ...Object.entries(standby).map(([k, v]) => `-c ${k}=${Number(v)}`),
    // The databases --db-include left out are zeroed files: WAL that touches their pages without
    // a full-page image (Heap2/VISIBLE) would stop recovery (pgBackRest issue #1782). They are
    // never read; a reference into the tenant's own database is refused after recovery (invalidPagesIn).
    '-c ignore_invalid_pages=on',
    // A scratch copy is thrown away: no durability needed, and no restartpoint while it replays.
    '-c fsync=off',
    '-c synchronous_commit=off',
    '-c checkpoint_timeout=1d',
    '-c max_wal_size=100GB',
  ];
  const r = await runAs(s.user, bin.pg_ctl, ['-D', s.pgdata, '-l', s.log, '-o', settings.join(' '), '-W', 'start'], { detached: true });
  if (r.code !== 0) throw new TenantctlError('PITR_FAILED', `the scratch cluster did not start: ${r.output.trim().slice(-400)}`);
  return port;
}

/** What recovery did, read from the scratch cluster's log. */
export interface Recovery {
  /** Databases (oids) with invalid page references replayed past (see invalidPageDatabases). */
  invalidPages: number[];
  /** The last transaction replayed (the time actually reached), as PostgreSQL logged it. */
  reached: string | null;
  /** Bytes of WAL replayed (redo start to redo done). */
  walBytes: number;
  redoStart: string | null;
  redoDone: string | null;
}

/**
 * Wait until the scratch cluster has replayed to the target and paused there (a hot standby
 * accepts connections once consistent, before that), calling onTick with the log so far. A
 * recovery that ends before the target (no WAL archived past it) is a window error.
 */
export async function waitRecovered(s: Scratch, url: string, onTick?: (r: Recovery) => void): Promise<Recovery> {
  const probe = new ReplayProbe(url);
  try {
    return await waitPaused(s, probe, onTick);
  } finally {
    await probe.close();
  }
}

async function waitPaused(s: Scratch, probe: ReplayProbe, onTick?: (r: Recovery) => void): Promise<Recovery> {
  for (;;) {
    const log = await readFile(s.log, 'utf8').catch(() => '');
    onTick?.(parseRecovery(log));
    if (/recovery ended before configured recovery target was reached/.test(log)) {
      throw new UsageError(
        'PITR_WINDOW',
        'the WAL archived so far ends before the time asked for: no transaction after it has been archived yet',
        'wait for the next WAL segment to be archived (archive_timeout), or pick an earlier time',
      );
    }
    const paused = await probe.pausedAt();
    if (paused) {
      const rec = parseRecovery(await readFile(s.log, 'utf8').catch(() => ''));
      const walBytes = rec.redoStart ? Number(lsnBytes(paused.lsn) - lsnBytes(rec.redoStart)) : rec.walBytes;
      return { ...rec, reached: paused.reached ?? rec.reached, walBytes, redoDone: paused.lsn };
    }
    if (/FATAL|PANIC/.test(log) && (await clusterStatus(s.pgdata)).state !== 'running') {
      const why = log
        .split('\n')
        .filter((l) => /FATAL|PANIC|WARNING|CONTEXT/.test(l) && !/not accepting connections|is starting up/.test(l))
        .slice(-5)
        .join(' | ');
      throw new TenantctlError('PITR_FAILED', `the scratch cluster stopped during recovery: ${why}`);
    }
    // Connected, a check is one query: asked often, the pause is seen within a few ms of it.
    await new Promise((r) => setTimeout(r, probe.connected ? 20 : 100));
  }
}

/**
 * Where the scratch cluster's replay stopped, once it paused at the target (or promoted); null
 * while it starts up or still replays. `reached`: the last transaction replayed. One connection,
 * kept once the hot standby accepts it (consistent), so each later check is one query.
 */
class ReplayProbe {
  private c: pg.Client | undefined;

  constructor(private readonly url: string) {}

  get connected(): boolean {
    return this.c !== undefined;
  }

  async pausedAt(): Promise<{ lsn: string; reached: string | null } | null> {
    try {
      const c = this.c ?? (await this.connect());
      const r = (
        await c.query<{ r: boolean; s: string; lsn: string | null; ts: Date | null }>(
          `select pg_is_in_recovery() as r, pg_get_wal_replay_pause_state() as s,
                  coalesce(pg_last_wal_replay_lsn(), pg_current_wal_lsn())::text as lsn, pg_last_xact_replay_timestamp() as ts`,
        )
      ).rows[0];
      if (r.r && r.s !== 'paused') return null;
      return { lsn: r.lsn ?? '0/0', reached: r.ts ? r.ts.toISOString() : null };
    } catch {
      await this.close(); // starting up, not yet consistent, or the connection broke: a fresh one next time
      return null;
    }
  }

  async close(): Promise<void> {
    const c = this.c;
    this.c = undefined;
    await c?.end().catch(() => undefined);
  }

  private async connect(): Promise<pg.Client> {
    const c = new pg.Client({ connectionString: this.url, application_name: 'tenantctl pitr', connectionTimeoutMillis: 5000 });
    c.on('error', () => undefined);
    try {
      await c.connect();
    } catch (err) {
      await c.end().catch(() => undefined);
      throw err;
    }
    this.c = c;
    return c;
  }
}

/**
 * The databases (by oid) whose pages recovery found missing or uninitialized (ignore_invalid_pages
 * turned its PANIC into warnings): only the left-out databases may be among them.
 */
export function invalidPageDatabases(log: string): Set<number> {
  const out = new Set<number>();
  for (const m of log.matchAll(
    /page \d+ of relation base\/(\d+)\/\d+ (?:is|was) uninitialized|page \d+ of relation base\/(\d+)\/\d+ does not exist/g,
  ))
    out.add(Number(m[1] ?? m[2]));
  return out;
}

/** The recovery facts in a PostgreSQL server log. */
export function parseRecovery(log: string): Recovery {
  const redoStart = /redo starts at ([0-9A-F]+\/[0-9A-F]+)/.exec(log)?.[1] ?? null;
  const redoDone = /redo done at ([0-9A-F]+\/[0-9A-F]+)/.exec(log)?.[1] ?? null;
  const reached =
    /last completed transaction was at log time ([^\n]+)/.exec(log)?.[1]?.trim() ??
    /recovery stopping before (?:commit|abort) of transaction \d+, time ([^\n]+)/.exec(log)?.[1]?.trim() ??
    null;
  const walBytes = redoStart && redoDone ? Number(lsnBytes(redoDone) - lsnBytes(redoStart)) : 0;
  return { reached, walBytes, redoStart, redoDone, invalidPages: [...invalidPageDatabases(log)] };
}

function lsnBytes(lsn: string): bigint {
  const [hi, lo] = lsn.split('/');
  return (BigInt(`0x${hi}`) << 32n) + BigInt(`0x${lo}`);
}

/**
 * Stop a scratch cluster (immediate: nothing of it is kept) and delete its folder. Only a folder
 * named like a scratch folder is deleted.
 */
export async function removeScratch(dir: string, user: OsUser | undefined): Promise<void> {
  if (!dir.split('/').at(-1)?.startsWith(SCRATCH_PREFIX)) throw new Error(`not a scratch folder: ${dir}`);
  const pgdata = join(dir, 'pgdata');
  if ((await clusterStatus(pgdata)).state === 'running') {
    const bin = await findBinaries();
    await runAs(user, bin.pg_ctl, ['-D', pgdata, '-m', 'immediate', '-w', '-t', '30', 'stop']);
  }
  await rm(dir, { recursive: true, force: true });
}
