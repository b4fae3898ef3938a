import { basename } from 'node:path';
import { sql } from 'kysely';
import type { CatalogDb } from '../catalog/open.js';
import { selectPlannable } from '../catalog/tenants.js';
import { UsageError } from '../errors.js';
import type { Fleet } from '../fleet/fleet.js';
import type { MigrationFile } from './files.js';
import { planTargets, type PlannedTarget } from './plan.js';
import { byDatabase, readStates, type TargetState } from './state.js';

/**
 * One version of each migration in the fleet (issue 18). A file edited after it ran somewhere
 * must not be applied, edited, to other targets: the fleet would hold two versions of one
 * migration and nothing would say which. The catalog keeps the checksum the fleet ran of each
 * file (`migration_checksums`, written before each run applies anything); a file whose checksum
 * differs, or a drift seen in the targets already read, sends `migrate up` to read the whole
 * fleet (one query per database, only then) for the targets that ran another version. None left
 * (all repaired): the record follows the file. Some, and this run would apply the file
 * elsewhere: refused (DRIFT, exit 2) before anything runs, naming the file, those targets and the
 * `migrate repair` command that makes them one version.
 */

/** The recorded checksum of each migration the fleet ran. */
export async function recordedChecksums(db: CatalogDb): Promise<Map<string, string>> {
  const rows = await db.selectFrom('migration_checksums').select(['name', 'checksum']).execute();
  return new Map(rows.map((r) => [r.name, r.checksum]));
}

/** Record the files' checksums for those not recorded yet (one statement; before a run applies them). */
export async function recordChecksums(db: CatalogDb, files: readonly MigrationFile[], replace = false): Promise<void> {
  if (files.length === 0) return;
  const rows = JSON.stringify(files.map((m) => ({ name: m.id, checksum: m.checksum })));
  await sql`
    insert into migration_checksums (name, checksum)
    select x.name, x.checksum from jsonb_to_recordset(${rows}::jsonb) as x(name text, checksum text)
    on conflict (name) do ${replace ? sql`update set checksum = excluded.checksum, recorded_at = now()` : sql`nothing`}`.execute(db);
}

export interface TwoVersionsCheck {
  db: CatalogDb;
  fleet: Fleet;
  migrations: MigrationFile[];
  concurrency: number;
}

/**
 * Throw DRIFT when this run would apply an edited file to a target while other targets ran its
 * old version. `known`: states already read (their drift counts as evidence without a record).
 */
export async function refuseTwoVersions(
  deps: TwoVersionsCheck,
  planned: readonly PlannedTarget[],
  known?: ReadonlyMap<string, TargetState>,
  opts: { dryRun?: boolean } = {},
): Promise<void> {
  const write = opts.dryRun ? async () => undefined : recordChecksums;
  const recorded = await recordedChecksums(deps.db);
  const edited = new Set(deps.migrations.filter((m) => (recorded.get(m.id) ?? m.checksum) !== m.checksum).map((m) => m.id));
  for (const s of known?.values() ?? []) if (s.ok) for (const d of s.report.drift) edited.add(d.migration);
  if (edited.size === 0) {
    await write(deps.db, deps.migrations);
    return;
  }
  // Which targets ran another version: the whole fleet, whatever this run selected.
  const fleetPlan = planTargets(await selectPlannable(deps.db, {}));
  const states = await readStates(deps.fleet, byDatabase(fleetPlan.targets), deps.migrations, { concurrency: deps.concurrency });
  const ranOld = new Map<string, PlannedTarget[]>();
  for (const t of fleetPlan.targets) {
    const s = states.get(t.id);
    if (!s?.ok) continue;
    for (const d of s.report.drift) if (edited.has(d.migration)) ranOld.set(d.migration, [...(ranOld.get(d.migration) ?? []), t]);
  }
  // Repaired everywhere (or never run elsewhere): the record follows the file.
  const settled = deps.migrations.filter((m) => edited.has(m.id) && !ranOld.has(m.id));
  await write(deps.db, settled, true);
  await write(deps.db, deps.migrations);
  if (ranOld.size === 0) return;
  const plannedIds = new Set(planned.map((t) => t.id));
  for (const m of deps.migrations) {
    const old = ranOld.get(m.id);
    if (!old) continue;
    const wouldGet = fleetPlan.targets.filter((t) => {
      const s = states.get(t.id);
      return plannedIds.has(t.id) && s?.ok && s.report.pending.some((p) => p.id === m.id);
    });
    if (wouldGet.length === 0) continue;
    throw twoVersionsError(m, old, wouldGet);
  }
  // No target would get the edited file, but selected ones ran the old one: each would only fail
  // on it (DRIFT) after the run started. Refused the same way, before anything runs.
  for (const m of deps.migrations) {
    const old = (ranOld.get(m.id) ?? []).filter((t) => plannedIds.has(t.id));
    if (old.length > 0) throw editedError(m, old);
  }
}

const NAMED = 10;

function editedError(m: MigrationFile, old: PlannedTarget[]): UsageError {
  const slugs = old.map((t) => t.tenants[0].slug);
  return new UsageError(
    'DRIFT',
    `${basename(m.file)} was edited after it was applied: ${old.length} selected target(s) ran the old version (${targetNames(old)}); nothing was applied`,
    `put the file back as it was and make the change in a new migration; or make those targets match the file: tenantctl migrate repair ${m.id} --tenant ${slugs.slice(0, 50).join(',')}${slugs.length > 50 ? ',…' : ''} --reapply --yes (runs the edited file there again) or --rebaseline --yes (records its checksum without running it)`,
  );
}

function targetNames(ts: PlannedTarget[]): string {
  return (
    ts
      .slice(0, NAMED)
      .map((t) => `${t.id} (${t.tenants.map((x) => x.slug).join(', ')})`)
      .join(', ') + (ts.length > NAMED ? ` and ${ts.length - NAMED} more` : '')
  );
}

function twoVersionsError(m: MigrationFile, old: PlannedTarget[], wouldGet: PlannedTarget[]): UsageError {
  const slugs = old.map((t) => t.tenants[0].slug);
  const tenants = slugs.slice(0, 50).join(',');
  return new UsageError(
    'DRIFT',
    `${basename(m.file)} was edited after it was applied: ${old.length} target(s) ran the old version (${targetNames(old)}), and this run would apply the edited one to ${wouldGet.length} other target(s) (${targetNames(wouldGet)}), leaving two versions of ${m.id} in the fleet; nothing was applied`,
    `make the targets that ran the old version match the file first: tenantctl migrate repair ${m.id} --tenant ${tenants}${slugs.length > 50 ? ',…' : ''} --reapply --yes (runs the edited file there again) or --rebaseline --yes (records its checksum without running it, when the edit changes nothing there); or put the file back as it was`,
  );
}
