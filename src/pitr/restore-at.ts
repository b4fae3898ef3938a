import { faultPoint } from '../operations/fault-points.js';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Config } from '../config/types.js';
import { findTenant } from '../catalog/tenants.js';
import type { TenantRow } from '../catalog/tables.js';
import { TenantctlError, UsageError, errorMessage } from '../errors.js';
import { redactText } from '../config/redact.js';
import { Fleet } from '../fleet/fleet.js';
import { ADMIN_DATABASE } from '../placement/databases.js';
import { withTenantLock } from '../operations/tenant-lock.js';
import { startOperation } from '../operations/operation-record.js';
import { assertSlug } from '../placement/slug.js';
import { backupLocked } from '../backup/create.js';
import { restoreBackup } from '../backup/restore-run.js';
import type { RestoreDeps, RestoreResult } from '../backup/restore.js';
import { storageFor } from '../backup/regions.js';
import { MANIFEST_FILE, type Manifest } from '../backup/manifest.js';
import { requirePgbackrest, pgbackrestOk } from './pgbackrest.js';
import { requirePitrRepo, stanzaOf, writePitrConfig } from './repo.js';
import { shardWindow, windowText, type ShardWindow } from './window.js';
import { assertRoom, freeBytes, human, scratchNeed } from './disk.js';
import { makeScratch, removeScratch, scratchPath, startScratch, waitRecovered, type Recovery, type Scratch } from './scratch.js';
import { PITR_RESTORE_KIND, sweepScratches } from './sweep.js';

export interface RestoreAtOptions {
  slug: string;
  /** The time to bring the tenant back to. */
  at: Date;
  as?: string;
  replace?: boolean;
  shard?: string;
  model?: string;
}

/** The phases a restore to a point in time reports, in order. */
export type PitrPhase = 'pgBackRest restore' | 'recovery' | 'extract' | 'load, verify' | 'switch';

export interface RestoreAtDeps extends RestoreDeps {
  /** A phase started (or moved on): its name and what it has done so far (sizes). */
  onPhase?: (phase: PitrPhase, detail: string) => void;
}

export interface RestoreAtResult extends RestoreResult {
  /** The time asked for, and the last transaction actually replayed (PostgreSQL's log). */
  at: string;
  reached: string | null;
  walReplayedBytes: number;
  /** What pgBackRest restored into the scratch folder. */
  restoredBytes: number;
  window: { from: string; to: string };
  tables: { table: string; rows: number }[];
  /** How the loaded rows were checked. */
  verification: string;
  phases: { phase: PitrPhase; ms: number }[];
}

/**
 * Bring one tenant back to a point in time, nobody else: pgBackRest restores the tenant's shard
 * (only the tenant's database: --db-include) into a scratch folder and recovers it to `at`
 * (promoting there), the scratch cluster runs on a port the OS picked; the tenant is extracted
 * from it with the backup engine (one snapshot, every table in its scope) and loaded by the
 * backup restore (src/backup/restore.ts): a new tenant with a new key (`as`), or in place
 * (`replace`: safety backup, fence, switch). The scratch cluster and folder are removed on every
 * way out, and by the next command after a kill (sweep.ts). Bad input (a time outside the window,
 * no archiving, no room) is exit 2 before anything starts.
 *
 * @example
 *   await restoreAt(deps, { slug: 'acme', at: new Date('2026-12-05T14:00:00Z'), replace: true });
 */
export async function restoreAt(deps: RestoreAtDeps, o: RestoreAtOptions): Promise<RestoreAtResult> {
  const { db, config, fleet } = deps;
  assertSlug(o.slug);
  if (o.as) assertSlug(o.as);
  if (Boolean(o.as) === Boolean(o.replace)) {
    throw new UsageError(
      'USAGE',
      'restore --at needs either --as <new-slug> or --replace --yes',
      'restore beside it with --as, or in place with --replace --yes',
    );
  }
  if (Number.isNaN(o.at.getTime()))
    throw new UsageError('BAD_INPUT', '--at is not a time', "give an ISO time: --at '2026-12-05T14:00:00Z'");
  await requirePgbackrest();
  const swept = await sweepScratches(db);
  const live = await liveTenant(deps, o.slug);
  const t = { ...live, dbOid: await databaseOid(fleet, live) };
  const shard = fleet.shard(t.shard);
  const repo = requirePitrRepo(config, shard.region);
  stanzaOf(config, shard);
  const user = await writePitrConfig(config, repo);
  const w = await shardWindow(fleet, repo, user, shard);
  const window = assertInWindow(w, o.at);
  await assertLivedThere(deps, t, o);
  const need = await scratchNeed(fleet, t.shard, [t.database_name], w.backups.at(-1)?.size ?? 0);
  assertRoom(need, await freeBytes(repo.scratchRoot), repo.scratchRoot);

  const phases: { phase: PitrPhase; ms: number }[] = [];
  let current: { phase: PitrPhase; at: number } | undefined;
  const phase = (p: PitrPhase, detail: string) => {
    if (current?.phase !== p) {
      if (current) phases.push({ phase: current.phase, ms: Date.now() - current.at });
      current = { phase: p, at: Date.now() };
    }
    deps.onPhase?.(p, detail);
  };
  const dir = scratchPath(repo.scratchRoot);
  // Recorded before the folder exists: a kill at any point leaves a record the next command sweeps.
  const op = await startOperation(db, {
    kind: PITR_RESTORE_KIND,
    tenant: t.slug,
    args: { at: o.at.toISOString(), scratch: dir, shard: t.shard },
  });
  let scratch: Scratch | undefined;
  let extracted: string | undefined;
  const storage = storageFor(config, t.region);
  try {
    scratch = await makeScratch(dir, user);
    phase('pgBackRest restore', `shard ${t.shard}, database ${t.database_name}, about ${human(need)}`);
    await op.phase('pgbackrest restore');
    await pgbackrestOk(
      repo,
      user,
      [
        `--stanza=${t.shard}`,
        `--pg1-path=${scratch.pgdata}`,
        '--type=time',
        `--target=${pgbackrestTime(o.at)}`,
        '--target-action=promote',
        '--archive-mode=off',
        `--db-include=${t.database_name}`,
        'restore',
      ],
      'restore',
    );
    const restoredBytes = await folderBytes(scratch.pgdata);
    phase('recovery', `restored ${human(restoredBytes)}; replaying WAL to ${o.at.toISOString()}`);
    await op.phase('recovery', { restoredBytes });
    const port = await startScratch(scratch);
    await faultPoint('pitr.recovery');
    const url = scratchUrl(shard.url, port, 'postgres');
    const rec: Recovery = await waitRecovered(scratch, url, (r) => {
      if (r.walBytes) phase('recovery', `replayed ${human(r.walBytes)} of WAL`);
    });
    if (rec.invalidPages.includes(t.dbOid))
      throw new TenantctlError(
        'PITR_FAILED',
        `recovery found invalid page references in ${t.database_name} itself (see the scratch cluster's log): its restored copy cannot be trusted`,
      );
    phase('extract', `reached ${rec.reached ?? 'the target'}; replayed ${human(rec.walBytes)} of WAL`);
    await op.phase('extract', { walBytes: rec.walBytes });
    const extractConfig = scratchConfig(config, t.shard, port, t.region);
    const scratchFleet = new Fleet(extractConfig);
    let backup: Awaited<ReturnType<typeof backupLocked>>;
    try {
      backup = await withTenantLock(db, t.slug, { command: deps.command, wait: deps.wait, onWaiting: deps.onWaiting }, () =>
        backupLocked(
          {
            ...deps,
            config: extractConfig,
            fleet: scratchFleet,
            onProgress: (p) => phase('extract', `${p.rows} rows, ${human(p.bytes)}`),
          },
          t,
        ),
      );
    } finally {
      await scratchFleet.close();
    }
    if (backup.status !== 'succeeded' || !backup.backup)
      throw new TenantctlError(
        'PITR_FAILED',
        `extracting ${t.slug} from the scratch cluster failed: ${backup.error?.message ?? backup.reason ?? ''}`,
      );
    extracted = backup.backup;
    const manifest = JSON.parse(await storage.readText(extracted, MANIFEST_FILE)) as Manifest;
    // The scratch cluster is not needed any more: the rows are in the archive.
    await removeScratch(dir, user);
    phase('load, verify', `${backup.rows ?? 0} rows in ${manifest.tables.length} tables`);
    await op.phase('load', { rows: backup.rows });
    const r = await restoreBackup(
      { ...deps, onProgress: (p) => phase('load, verify', `${p.rows} of ${p.total ?? '?'} rows`) },
      { backup: extracted, as: o.as, replace: o.replace, shard: o.shard, model: o.model },
    );
    if (r.replaced) phase('switch', `switched; writes refused ${r.writesRefusedMs ?? 0} ms`);
    if (current) phases.push({ phase: current.phase, ms: Date.now() - current.at });
    await op.finish(r.status === 'succeeded' ? 'succeeded' : 'failed', { rows: r.rows, reached: rec.reached });
    return {
      ...r,
      backup: `${t.slug} at ${o.at.toISOString()}`,
      at: o.at.toISOString(),
      reached: rec.reached,
      walReplayedBytes: rec.walBytes,
      restoredBytes,
      window,
      tables: manifest.tables.map((x) => ({ table: x.table, rows: x.rows })),
      verification:
        r.status === 'succeeded'
          ? `every table's row count and hash equal the scratch cluster's at ${rec.reached ?? o.at.toISOString()}; foreign keys checked ${r.foreignKeys ?? ''}`.trim()
          : 'not verified: the load failed',
      phases,
      ...(swept.length ? { warnings: [...swept, ...(r.warnings ?? [])] } : {}),
    };
  } catch (err) {
    await op.finish('failed', { error: redactText(errorMessage(err)) }).catch(() => undefined);
    throw err;
  } finally {
    if (scratch) await removeScratch(dir, user).catch(() => undefined);
    // The interim archive is the scratch cluster's copy of the tenant, not a backup anyone took.
    if (extracted) await storage.remove(extracted).catch(() => undefined);
  }
}

/** The oid of the tenant's database (the same in a restored copy of the shard). */
async function databaseOid(fleet: Fleet, t: TenantRow): Promise<number> {
  const r = await fleet.withClient(t.shard, ADMIN_DATABASE, (c) =>
    c.query<{ oid: number }>('select oid::int as oid from pg_database where datname = $1', [t.database_name]),
  );
  return r.rows[0]?.oid ?? -1;
}

/** The tenant in the catalog now, active or suspended. */
async function liveTenant(deps: RestoreAtDeps, slug: string): Promise<TenantRow> {
  const t = await findTenant(deps.db, slug);
  if (!t) {
    throw new UsageError(
      'TENANT_NOT_FOUND',
      `no tenant "${slug}" in the catalog`,
      `a deleted tenant comes back from its final backup: tenantctl backup list ${slug}`,
    );
  }
  if (t.status !== 'active' && t.status !== 'suspended')
    throw new UsageError(
      'TENANT_STATE',
      `tenant "${slug}" is ${t.status}`,
      'only active or suspended tenants can be restored to a point in time',
    );
  return t;
}

/**
 * The tenant at `at`: it must have existed then and lived where it lives now (a move since: its
 * rows at that time are in another placement; refused naming it). The slug of --as must be free.
 */
async function assertLivedThere(deps: RestoreAtDeps, t: TenantRow, o: RestoreAtOptions): Promise<void> {
  const { db } = deps;
  if (t.created_at > o.at) {
    throw new UsageError(
      'PITR_WINDOW',
      `tenant "${o.slug}" did not exist at ${o.at.toISOString()}: it was created at ${t.created_at.toISOString()}`,
      'pick a time after it was created',
    );
  }
  const moved = await db
    .selectFrom('events')
    .select(['at', 'details'])
    .where('tenant_slug', '=', o.slug)
    .where('action', '=', 'moved')
    .where('at', '>', o.at)
    .orderBy('at')
    .executeTakeFirst();
  if (moved) {
    const d = moved.details as { from?: string; to?: string };
    throw new UsageError(
      'PITR_WINDOW',
      `tenant "${o.slug}" was moved at ${new Date(moved.at).toISOString()} (from ${d.from ?? '?'} to ${d.to ?? '?'}): at ${o.at.toISOString()} its rows were on ${d.from ?? 'another placement'}`,
      'restore to a time after the move, or restore its shard of then by hand',
    );
  }
  if (o.as && (await findTenant(db, o.as))) {
    throw new UsageError('TENANT_EXISTS', `tenant "${o.as}" exists`, 'pick another slug for --as');
  }
}

function assertInWindow(w: ShardWindow, at: Date): { from: string; to: string } {
  if (!w.window) {
    throw new UsageError(
      'PITR_NOT_CONFIGURED',
      `shard ${w.shard} cannot be restored to a point in time: ${w.problem ?? 'no base backup or archived WAL'}`,
      `tenantctl pitr setup --shard ${w.shard}, then tenantctl pitr backup --shard ${w.shard}`,
    );
  }
  const iso = at.toISOString();
  if (iso < w.window.from || iso > w.window.to) {
    throw new UsageError(
      'PITR_WINDOW',
      `${iso} is outside shard ${w.shard}'s recoverable window ${windowText(w)}`,
      `pick a time in that window (tenantctl pitr status); ${iso < w.window.from ? 'older times need an older base backup' : 'later WAL is archived within archive_timeout'}`,
    );
  }
  return w.window;
}

/** `2026-12-05 14:00:00.000+00`: the time format pgBackRest's --target takes (ISO's T and Z it refuses). */
export function pgbackrestTime(at: Date): string {
  return at.toISOString().replace('T', ' ').replace('Z', '+00');
}

/** The shard's url pointed at the scratch cluster (same role and password: they were restored with it). */
function scratchUrl(shardUrl: string, port: number, database?: string): string {
  const u = new URL(shardUrl);
  u.hostname = '127.0.0.1';
  u.port = String(port);
  if (database) u.pathname = `/${database}`;
  return u.toString();
}

/**
 * The config with one shard served by the scratch cluster: the backup engine reads the tenant
 * there. The interim archive is read once and removed: not compressed (brotli would cost more
 * time than the disk it saves).
 */
function scratchConfig(config: Config, shard: string, port: number, region: string): Config {
  const r = config.regions[region];
  return {
    ...config,
    regions: r?.backup ? { ...config.regions, [region]: { ...r, backup: { ...r.backup, compression: 'none' } } } : config.regions,
    shards: config.shards.map((s) => (s.name === shard ? { ...s, url: scratchUrl(s.url, port) } : s)),
  };
}

async function folderBytes(dir: string): Promise<number> {
  let n = 0;
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) n += (await stat(join(e.parentPath ?? e.path, e.name)).catch(() => ({ blocks: 0 }))).blocks * 512;
  }
  return n;
}
