import type { Shard } from '../config/types.js';
import type { CatalogDb } from '../catalog/open.js';
import { findTenant } from '../catalog/tenants.js';
import type { TenantRow } from '../catalog/tables.js';
import { UsageError } from '../errors.js';
import type { Fleet } from '../fleet/fleet.js';
import type { OsUser } from '../dev/os-user.js';
import { ADMIN_DATABASE } from '../placement/databases.js';
import { assertSlug } from '../placement/slug.js';
import { encryptsBackups } from '../backup/regions.js';
import { tenantDataKey } from '../backup/keys.js';
import { requirePgbackrest } from './pgbackrest.js';
import { requirePitrRepo, stanzaOf, writePitrConfig, type PitrRepo } from './repo.js';
import { shardWindow, windowText, type ShardWindow } from './window.js';
import { assertRoom, freeBytes, needFromBackup, scratchNeed } from './disk.js';
import type { RestoreAtDeps, RestoreAtOptions } from './restore-at-types.js';

/** What a restore to a point in time checked before it starts, and works with. */
export interface Preflight {
  tenant: TenantRow & { dbOid: number };
  shard: Shard;
  repo: PitrRepo;
  user: OsUser | undefined;
  window: { from: string; to: string };
  /** Bytes the scratch restore needs (checked against the scratch folder's free space). */
  need: number;
  /** The shard's settings a hot standby of it must match or exceed (scratch.ts). */
  standby: Record<string, string>;
}

/**
 * Every check of restore --at that needs no scratch cluster, refused (exit 2) before anything is
 * made: the flags, pgBackRest installed, the tenant live (and for --replace in a region that
 * encrypts, the master key its safety backup needs) and living where it lived at `at`, the
 * shard's window holding `at`, room for the scratch restore. The independent reads run at once
 * (pgBackRest's `info` is the slow one).
 */
export async function preflight(deps: RestoreAtDeps, o: RestoreAtOptions): Promise<Preflight> {
  const { db, config, fleet } = deps;
  assertFlags(o);
  await requirePgbackrest();
  const live = await liveTenant(db, o.slug);
  // --replace writes a safety backup first: in a region that encrypts, its data key must unwrap
  // with TENANTCTL_BACKUP_KEY now, not after the whole recovery has run.
  if (o.replace && encryptsBackups(config, live.region)) await tenantDataKey(db, live.slug);
  const shard = fleet.shard(live.shard);
  const repo = requirePitrRepo(config, shard.region);
  stanzaOf(config, shard);
  const user = await writePitrConfig(config, repo);
  const [dbOid, standby, w, need, free, notThere] = await Promise.all([
    databaseOid(fleet, live),
    standbySettings(fleet, live.shard),
    shardWindow(fleet, repo, user, shard),
    scratchNeed(fleet, live.shard, [live.database_name]),
    freeBytes(repo.scratchRoot),
    // Its refusal is said after the window's: a time outside the window is the first thing to fix.
    assertLivedThere(db, live, o).then(
      () => null,
      (err: unknown) => err,
    ),
  ]);
  const window = assertInWindow(w, o.at);
  if (notThere) throw notThere;
  const room = need ?? needFromBackup(w.backups.at(-1)?.size ?? 0);
  assertRoom(room, free, repo.scratchRoot);
  return { tenant: { ...live, dbOid }, shard, repo, user, window, need: room, standby };
}

function assertFlags(o: RestoreAtOptions): void {
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
}

/** The oid of the tenant's database (the same in a restored copy of the shard). */
async function databaseOid(fleet: Fleet, t: TenantRow): Promise<number> {
  const r = await fleet.withClient(t.shard, ADMIN_DATABASE, (c) =>
    c.query<{ oid: number }>('select oid::int as oid from pg_database where datname = $1', [t.database_name]),
  );
  return r.rows[0]?.oid ?? -1;
}

/**
 * The settings a hot standby must have at least as high as its primary (else recovery aborts):
 * the shard's now, which a dev cluster sets on its command line, not in the restored config.
 */
async function standbySettings(fleet: Fleet, shard: string): Promise<Record<string, string>> {
  const r = await fleet.withClient(shard, ADMIN_DATABASE, (c) =>
    c.query<{ name: string; setting: string }>(
      `select name, setting from pg_settings
        where name in ('max_connections', 'max_worker_processes', 'max_wal_senders', 'max_prepared_transactions', 'max_locks_per_transaction')`,
    ),
  );
  return Object.fromEntries(r.rows.map((x) => [x.name, x.setting]));
}

/** The tenant in the catalog now, active or suspended. */
async function liveTenant(db: CatalogDb, slug: string): Promise<TenantRow> {
  const t = await findTenant(db, slug);
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
async function assertLivedThere(db: CatalogDb, t: TenantRow, o: RestoreAtOptions): Promise<void> {
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
