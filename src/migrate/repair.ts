import { hostname } from 'node:os';
import type { CatalogDb } from '../catalog/open.js';
import { recordEvent } from '../catalog/events.js';
import { selectTenants, type TenantSelector } from '../catalog/tenants.js';
import type { Config } from '../config/types.js';
import { redactDeep, redactText } from '../config/redact.js';
import { lostConnectionError } from '../connection-loss.js';
import { errorMessage, TenantctlError, UsageError } from '../errors.js';
import { resultDocument, type ResultDocument, type TenantResult } from '../fanout/result.js';
import type { Fleet } from '../fleet/fleet.js';
import { acquireRunLock, holderName } from '../operations/run-lock.js';
import { markCrashed } from './run-record.js';
import { withTenantLock } from '../operations/tenant-lock.js';
import { migrationHooks } from '../placement/drivers.js';
import { ident, literal } from '../sql.js';
import { importMigration, type MigrationFile } from './files.js';
import { kyselyOnClient } from './kysely-on-client.js';
import { planTargets, type PlannedTarget } from './plan.js';
import { byDatabase, readStates, type TargetState } from './state.js';
import { targetLockSql } from './target-lock.js';
import { rendered, templateVars } from './template.js';
import { TRACKING } from './tracking.js';
import { durationMs } from '../config/load.js';

/**
 * `migrate repair <migration> --reapply | --rebaseline`: make targets that ran an edited file's
 * old version (drift) match the file, so the fleet holds one version of it again.
 *
 * - `--reapply` runs the file as it is now on each drifted target, with its tracking row's new
 *   checksum, in ONE transaction per target (so only files that run in a transaction), a schema
 *   or database target under its tenant's lock, a pool target under the engine's target lock
 *   and with its row-level security re-applied, as `migrate up` does.
 * - `--rebaseline` records the file's checksum without running it (the edit changes nothing
 *   there, or the operator made the change by hand).
 *
 * Under the fleet run lock (no `migrate up` meanwhile). Recorded as an operations row (kind
 * 'migrate-repair'), a `migrate_targets` row per target and an event per tenant; `migrate status`
 * lists recent repairs. Targets where the file is not applied, or applied as it is, are skipped
 * with the reason.
 */
export type RepairMode = 'reapply' | 'rebaseline';

export interface RepairDeps {
  config: Config;
  db: CatalogDb;
  fleet: Fleet;
  migrations: MigrationFile[];
  command: string;
}

export interface RepairOptions {
  migration: string;
  mode: RepairMode;
  selector: TenantSelector;
  concurrency: number;
  dryRun?: boolean;
  wait?: boolean;
}

export interface RepairRow extends TenantResult {
  migration: string;
  mode: RepairMode;
  /** The checksum the target had recorded (the old version's). */
  appliedChecksum?: string;
  fileChecksum: string;
}

export interface RepairDocument extends ResultDocument<RepairRow> {
  run: number | null;
  migration: string;
  mode: RepairMode;
  dryRun: boolean;
}

export async function migrateRepair(deps: RepairDeps, o: RepairOptions): Promise<RepairDocument> {
  const started = Date.now();
  const m = findMigration(deps.migrations, o.migration);
  if (o.mode === 'reapply') await assertOneTransaction(m);
  const plan = planTargets(await selectTenants(deps.db, o.selector));
  const states = await readStates(deps.fleet, byDatabase(plan.targets), deps.migrations, { concurrency: o.concurrency });
  const rows: RepairRow[] = [];
  const work: { t: PlannedTarget; applied: string }[] = [];
  const base = { migration: m.id, mode: o.mode, fileChecksum: m.checksum };
  for (const t of plan.targets) {
    const s = states.get(t.id)!;
    if (!s.ok) {
      rows.push(...perTenant(t, { ...base, status: 'failed', error: { code: s.error.code, message: s.error.message } }));
      continue;
    }
    const why = skipReason(s, m);
    if (typeof why === 'string') rows.push(...perTenant(t, { ...base, status: 'skipped', reason: why }));
    else work.push({ t, applied: why.applied });
  }
  for (const s of plan.skipped) rows.push({ ...base, tenant: s.tenant.slug, target: s.target, status: 'skipped', reason: s.reason });
  if (o.dryRun) {
    for (const w of work) {
      rows.push(...perTenant(w.t, { ...base, status: 'skipped', appliedChecksum: w.applied, reason: `dry run: would ${verb(o.mode)}` }));
    }
    return doc(deps, rows, started, null, m, o);
  }
  const lock = await acquireRunLock(deps.db, { wait: o.wait });
  let run = 0;
  try {
    // A killed repair's record would stay running forever: under the exclusive fleet lock it is dead.
    await lock.use((s) => markCrashed(s));
    run = await openRepair(deps.db, m, o, work.length);
    for (const w of work) rows.push(...(await repairOne(deps, run, m, o, w.t, w.applied)));
    // Counted in targets, as `targets` is (a pool's target holds many tenants, each a row).
    const targetsWith = (status: string) => new Set(rows.filter((r) => r.status === status).map((r) => r.target)).size;
    const failed = targetsWith('failed');
    const repaired = targetsWith('succeeded');
    await deps.db
      .updateTable('operations')
      .set({
        status: failed ? 'failed' : 'succeeded',
        finished_at: new Date(),
        heartbeat_at: new Date(),
        progress: JSON.stringify({ targets: work.length, repaired, failed }),
      })
      .where('id', '=', run)
      .execute();
  } finally {
    await lock.release();
  }
  return doc(deps, rows, started, run, m, o);
}

function doc(deps: RepairDeps, rows: RepairRow[], started: number, run: number | null, m: MigrationFile, o: RepairOptions): RepairDocument {
  rows.sort((a, b) => (a.tenant < b.tenant ? -1 : a.tenant > b.tenant ? 1 : 0));
  return resultDocument(deps.command, rows, started, { run, migration: m.id, mode: o.mode, dryRun: Boolean(o.dryRun) }) as RepairDocument;
}

const verb = (mode: RepairMode) =>
  mode === 'reapply' ? 're-apply the file as it is now' : "record the file's checksum without running it";

/** The migration by id or by its number (`0002`). */
export function findMigration(migrations: MigrationFile[], wanted: string): MigrationFile {
  const hit = migrations.filter((m) => m.id === wanted || m.id.startsWith(`${wanted}_`));
  if (hit.length === 1) return hit[0];
  throw new UsageError(
    'BAD_INPUT',
    `no single migration file "${wanted}" in the migrations folder${hit.length > 1 ? ` (it matches ${hit.map((x) => x.id).join(', ')})` : ''}`,
    `give one of: ${migrations.map((x) => x.id).join(', ')}`,
  );
}

async function assertOneTransaction(m: MigrationFile): Promise<void> {
  const tx = m.kind === 'module' ? ((await importMigration(m)).transaction ?? m.transactional) : m.transactional;
  if (tx) return;
  throw new UsageError(
    'BAD_INPUT',
    `${m.id} runs outside a transaction, so it cannot be re-applied atomically`,
    `apply the change by hand on the drifted targets, then tenantctl migrate repair ${m.id} --rebaseline`,
  );
}

/** Why a target is not repaired, or the checksum it ran. */
function skipReason(s: Extract<TargetState, { ok: true }>, m: MigrationFile): string | { applied: string } {
  const d = s.report.drift.find((x) => x.migration === m.id);
  if (d) return { applied: d.appliedChecksum };
  if (s.report.applied.includes(m.id)) return 'already matches the file';
  return 'not applied here (migrate up applies it)';
}

function perTenant(t: PlannedTarget, r: Omit<RepairRow, 'tenant'>): RepairRow[] {
  return t.tenants.map((x) => ({ ...r, tenant: x.slug, model: t.model, region: t.region, shard: t.shard, target: t.id }) as RepairRow);
}

async function openRepair(db: CatalogDb, m: MigrationFile, o: RepairOptions, targets: number): Promise<number> {
  const { holder, ciJob } = holderName();
  const row = await db
    .insertInto('operations')
    .values({
      kind: 'migrate-repair',
      status: 'running',
      tenant_slug: null,
      holder,
      args: JSON.stringify(
        redactDeep({
          migration: m.id,
          mode: o.mode,
          checksum: m.checksum,
          selector: o.selector,
          pid: process.pid,
          host: hostname(),
          ciJob,
        }),
      ),
      progress: JSON.stringify({ targets }),
    })
    .returning('id')
    .executeTakeFirstOrThrow();
  return Number(row.id);
}

/** One drifted target: its transaction, its migrate_targets row, its tenants' events. */
async function repairOne(
  deps: RepairDeps,
  run: number,
  m: MigrationFile,
  o: RepairOptions,
  t: PlannedTarget,
  applied: string,
): Promise<RepairRow[]> {
  const t0 = Date.now();
  const base = { migration: m.id, mode: o.mode, fileChecksum: m.checksum, appliedChecksum: applied, durationMs: 0 };
  let row: Omit<RepairRow, 'tenant'>;
  try {
    const hooks = migrationHooks(t.model);
    const body = () => applyRepair(deps, m, o.mode, t, hooks.shared);
    const done = hooks.shared
      ? await body()
      : await withTenantLock(deps.db, t.tenants[0].slug, { command: deps.command, wait: o.wait }, body);
    row = done ? { ...base, status: 'succeeded' } : { ...base, status: 'skipped', reason: 'already matches the file (repaired meanwhile)' };
  } catch (err) {
    const e = lostConnectionError(err, `the repair of ${t.id}`) ?? err;
    const code = e instanceof TenantctlError ? e.code : 'MIGRATION_FAILED';
    row = { ...base, status: 'failed', error: { code, message: redactText(errorMessage(e)), migration: m.id } };
  }
  const ms = Date.now() - t0;
  row.durationMs = ms;
  const rows = perTenant(t, row);
  await deps.db
    .insertInto('migrate_targets')
    .values({
      run_id: run,
      target: t.id,
      position: 0,
      model: t.model,
      shard: t.shard,
      database_name: t.database,
      schema_name: t.schema,
      tenants: t.tenants.map((x) => x.slug),
      status: row.status === 'failed' ? 'failed' : row.status === 'succeeded' ? 'succeeded' : 'not_run',
      applied: row.status === 'succeeded' && o.mode === 'reapply' ? [m.id] : [],
      error: row.error ? JSON.stringify(row.error) : row.reason ? JSON.stringify({ reason: row.reason }) : null,
      started_at: new Date(t0),
      finished_at: new Date(),
      duration_ms: ms,
    })
    .execute();
  for (const r of rows) {
    await recordEvent(deps.db, {
      command: deps.command,
      action: o.mode === 'reapply' ? 'migration re-applied' : 'migration re-baselined',
      result: r.status === 'failed' ? 'failed' : r.status === 'succeeded' ? 'ok' : 'skipped',
      tenant: r.tenant,
      details: { run, migration: m.id, target: t.id, from: applied, to: m.checksum, ...(r.error ? { error: r.error.message } : {}) },
    });
  }
  return rows;
}

/**
 * In one transaction on the target: the target lock (pool), the tracking row re-read under a row
 * lock (another repair may have done it), the file run again (reapply; a pool's row-level
 * security after it), the new checksum recorded. False when there was nothing left to do.
 */
async function applyRepair(deps: RepairDeps, m: MigrationFile, mode: RepairMode, t: PlannedTarget, shared: boolean): Promise<boolean> {
  const { config } = deps;
  const lockMs = durationMs(config.migrations.lockTimeout);
  const statementMs = durationMs(config.migrations.statementTimeout);
  return deps.fleet.withTransaction(t.shard, t.database, async (c) => {
    await c.query(
      `select set_config('search_path', ${literal(`${ident(t.schema)}, public`)}, true), set_config('lock_timeout', '${lockMs}ms', true), set_config('statement_timeout', '${statementMs}ms', true)`,
    );
    if (shared) await c.query(`select ${targetLockSql('pg_advisory_xact_lock', t.schema)}`);
    const cur = await c.query<{ checksum: string }>(`select checksum from ${TRACKING} where target_schema = $1 and name = $2 for update`, [
      t.schema,
      m.id,
    ]);
    if (!cur.rows[0] || cur.rows[0].checksum === m.checksum) return false;
    const t0 = Date.now();
    if (mode === 'reapply') {
      if (m.kind === 'module') await (await importMigration(m)).up(kyselyOnClient(c, { insideTransaction: true }));
      else await c.query(`${rendered(m, templateVars(config))}\n;`);
      const hooks = migrationHooks(t.model);
      if (hooks.afterMigrate) await hooks.afterMigrate(c, t.schema, config);
    }
    await c.query(
      `update ${TRACKING} set checksum = $3, applied_at = now(), duration_ms = coalesce($4, duration_ms) where target_schema = $1 and name = $2`,
      [t.schema, m.id, m.checksum, mode === 'reapply' ? Date.now() - t0 : null],
    );
    return true;
  });
}
