import type { Check } from './types.js';
import { Migrator } from 'kysely';
import { $ } from 'zx/core';
import type { Config } from '../config/types.js';
import { redactText } from '../config/redact.js';
import { errorMessage } from '../errors.js';
import type { Fleet } from '../fleet/fleet.js';
import { connectionHeadroomCheck } from './connection-headroom.js';
import { servingPasswordRefused } from '../placement/pool/serving-login.js';
import { unlockedTenants } from '../operations/unlocked-tenants.js';
import { ADMIN_DATABASE } from '../placement/databases.js';
import { openCatalog } from '../catalog/open.js';
import { catalogMigrations } from '../catalog/migrations.js';
import type { CatalogDb } from '../catalog/open.js';
import { tenantRole } from '../placement/placement.js';
import { loadMigrations } from '../migrate/files.js';
import { shardRoleChecks } from './shard-role.js';
import { onlineMoveCheck } from './online-move.js';
import { poolLoadsCheck } from './pool-loads.js';
import { catalogBackupCheck } from './catalog-backup-age.js';
import { sweepCheck } from '../operations/sweep.js';
import { catalogReachCheck, closedFunctionsChecks, maintenanceReachCheck } from './public-reach.js';
import { pitrChecks, pitrScratchCheck } from './pitr.js';

/**
 * Everything an operator wants to know before trusting a run: config valid, shards reachable
 * with their versions, catalog migrated, pg_dump present and new enough, roles present.
 */
export async function runDoctor(config: Config, fleet: Fleet): Promise<Check[]> {
  const checks: Check[] = [
    {
      check: 'config',
      ok: true,
      detail: `${config.file}: ${config.shards.length} shard(s) in ${Object.keys(config.regions).length} region(s)`,
    },
  ];
  const majors: number[] = [];
  await Promise.all(
    config.shards.map(async (s) => {
      await shardChecks(config, fleet, s, majors, checks);
    }),
  );
  try {
    let created: string | undefined;
    const db = await openCatalog(config, { migrate: false, onCreate: (place) => (created = place) });
    try {
      const all = await new Migrator({ db, provider: catalogMigrations }).getMigrations();
      const pending = all.filter((m) => !m.executedAt).map((m) => m.name);
      // A fresh fleet's catalog is migrated by the first command that needs it: information, not a failure.
      const state = pending.length ? `not migrated yet: ${pending.join(', ')} (the first command that needs it applies them)` : 'migrated';
      checks.push({
        check: 'catalog',
        ok: true,
        // Made by this run: right for a new fleet, and the sign of a wrong catalog.url for an old one.
        detail: created ? `${state}; created now, empty (${created}): if this fleet has tenants, catalog.url points elsewhere` : state,
      });
      checks.push(await catalogReachCheck(db));
      if (pending.length === 0) {
        checks.push(...(await tenantRoleChecks(db, fleet, config)));
        checks.push(await stuckTenantsCheck(db));
        checks.push(await sweepCheck({ config, db, fleet, command: 'doctor' }));
        checks.push(await catalogBackupCheck(config));
        checks.push(await pitrScratchCheck(db));
      }
    } finally {
      await db.destroy();
    }
  } catch (err) {
    checks.push({ check: 'catalog', ok: false, detail: redactText(errorMessage(err)) });
  }
  checks.push(await migrationsCheck(config));
  checks.push(...(await pitrChecks(config, fleet)));
  checks.push(await pgDumpCheck(majors));
  return checks.sort((a, b) => a.check.localeCompare(b.check));
}

/**
 * One shard, pushed into `checks` as they come (a failure half-way keeps the ones before it):
 * reachable and its version (its major kept in `majors`), its roles, online moves, pool loads,
 * maintenance reach.
 */
async function shardChecks(config: Config, fleet: Fleet, s: Config['shards'][number], majors: number[], checks: Check[]): Promise<void> {
  try {
    const r = await fleet.withClient(s.name, ADMIN_DATABASE, (c) =>
      c.query<{ v: string; n: number; serving: boolean }>(
        `select current_setting('server_version') as v, current_setting('server_version_num')::int as n,
                exists(select 1 from pg_roles where rolname = $1) as serving`,
        [config.servingRole.name],
      ),
    );
    const row = r.rows[0];
    majors.push(Math.floor(row.n / 10000));
    checks.push({ check: `shard ${s.name}`, ok: true, detail: `reachable, PostgreSQL ${row.v}` });
    checks.push(...(await shardRoleChecks(config, fleet, s)));
    checks.push(await connectionHeadroomCheck(config, fleet, s));
    checks.push(await onlineMoveCheck(fleet, s));
    checks.push(await poolLoadsCheck(fleet, s));
    checks.push(await maintenanceReachCheck(fleet, s));
    checks.push(...(await closedFunctionsChecks(fleet, s)));
    // Present, and still taking the configured password (a pool tenant can change the shared role's).
    const refused = row.serving ? await servingPasswordRefused(s.url, ADMIN_DATABASE, config) : false;
    checks.push({
      check: `role ${config.servingRole.name} on ${s.name}`,
      // Not an error: it is created with the shard's first pool tenant.
      ok: !refused,
      detail: refused
        ? `present, but it refuses servingRole.password: every pool tenant's application on ${s.name} is locked out (a pool tenant can set the shared role's password through its own session); tenantctl audit --fix --yes sets it back`
        : row.serving
          ? 'present'
          : 'not created yet (made with the first pool tenant on this shard)',
    });
  } catch (err) {
    checks.push({ check: `shard ${s.name}`, ok: false, detail: redactText(errorMessage(err)) });
  }
}

/** pg_dump on PATH and at least as new as the newest shard (`majors`). */
async function pgDumpCheck(majors: number[]): Promise<Check> {
  try {
    $.verbose = false;
    const out = (await $`pg_dump --version`.quiet()).stdout.trim();
    const major = Number(/(\d+)(?:\.\d+)?/.exec(out.replace(/^[^\d]*/, ''))?.[1] ?? 0);
    const newest = Math.max(0, ...majors);
    const ok = major >= newest;
    return {
      check: 'pg_dump',
      ok,
      detail: ok ? `${out}` : `${out} is older than the newest shard (PostgreSQL ${newest}); install pg_dump ${newest} or newer`,
    };
  } catch {
    return {
      check: 'pg_dump',
      ok: false,
      detail: 'pg_dump not found on PATH: install the PostgreSQL client tools (backups need it)',
    };
  }
}

/** The application's migrations folder exists and its files load (names, numbering, readability). */
async function migrationsCheck(config: Config): Promise<Check> {
  try {
    const files = await loadMigrations(config.migrationsDir);
    return {
      check: 'migrations',
      ok: files.length > 0,
      detail: files.length
        ? `${config.migrationsDir}: ${files.length} file(s), head ${files.at(-1)!.id}`
        : `${config.migrationsDir} holds no migration files (NNNN_name.sql): tenants would get no tables`,
    };
  } catch (err) {
    return { check: 'migrations', ok: false, detail: redactText(errorMessage(err)) };
  }
}

/** Tenants a command left half-way: each needs its command run again (or deleted). */
async function stuckTenantsCheck(db: CatalogDb): Promise<Check> {
  const halfway = await db
    .selectFrom('tenants')
    .select(['slug', 'status', 'status_detail'])
    .where('status', 'in', ['provisioning', 'failed', 'deleting', 'moving'])
    .orderBy('slug')
    .execute();
  // A tenant whose lock a live command holds is in its command's hands, not stuck (a create or a
  // move running now is `provisioning` or `moving` for as long as it runs).
  const free = await unlockedTenants(
    db,
    halfway.map((t) => t.slug),
  );
  const stuck = halfway.filter((t) => free.has(t.slug));
  const fix: Record<string, string> = {
    provisioning: 'tenant create again to finish',
    failed: 'tenant create again to retry',
    deleting: 'tenant delete again to finish',
    moving: 'move again to resume, or move rollback',
  };
  return {
    check: 'stuck tenants',
    ok: stuck.length === 0,
    detail: stuck.length
      ? stuck.map((t) => `${t.slug} ${t.status} (run ${fix[t.status]}${t.status_detail ? `; ${t.status_detail}` : ''})`).join('; ')
      : 'none in provisioning, failed or deleting',
  };
}

/** Every schema and database tenant of the catalog has its role on its shard. */
async function tenantRoleChecks(db: CatalogDb, fleet: Fleet, config: Config): Promise<Check[]> {
  const tenants = await db
    .selectFrom('tenants')
    .select(['slug', 'shard', 'model'])
    .where('status', 'in', ['active', 'suspended'])
    .execute();
  // The placement says which tenants have a role of their own (tenantRole: null for none).
  const withRole = tenants.flatMap((t) => {
    const role = tenantRole(t);
    return role ? [{ shard: t.shard, role }] : [];
  });
  const out: Check[] = [];
  for (const shard of config.shards) {
    const expected = withRole.filter((t) => t.shard === shard.name).map((t) => t.role);
    if (expected.length === 0) continue;
    try {
      const { rows } = await fleet.withClient(shard.name, ADMIN_DATABASE, (c) =>
        c.query<{ rolname: string }>('select rolname from pg_roles where rolname = any($1)', [expected]),
      );
      const have = new Set(rows.map((r) => r.rolname));
      const missing = expected.filter((r) => !have.has(r));
      out.push({
        check: `tenant roles on ${shard.name}`,
        ok: missing.length === 0,
        detail: missing.length
          ? `missing: ${missing.join(', ')} (re-create with tenant create on a failed tenant, or create the role)`
          : `${expected.length} present`,
      });
    } catch {
      // The shard's own check already reports it unreachable.
    }
  }
  return out;
}
export type { Check } from './types.js';
