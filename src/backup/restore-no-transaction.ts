import { basename } from 'node:path';
import type pg from 'pg';
import { UsageError } from '../errors.js';
import type { Fleet } from '../fleet/fleet.js';
import type { MigrationFile } from '../migrate/files.js';
import { runsInOneTransaction } from '../migrate/apply-target.js';
import { readApplied } from '../migrate/tracking.js';
import { plainTables } from '../copy/tables.js';
import type { PlacedTenant } from '../placement/drivers.js';
import { targetId } from '../placement/naming.js';
import { databaseExists } from '../placement/pool-rows.js';
import { qualified } from '../sql.js';
import type { Manifest } from './manifest.js';

/**
 * What restore does differently when a migration must run outside a transaction
 * (`-- tenantctl:no-transaction`, e.g. CREATE INDEX CONCURRENTLY): schema and database tenants
 * are built step by step (restore.ts), and a pool restore that would need such a file inside its
 * one transaction is refused here before anything changes.
 */

/**
 * The first file that cannot run inside a caller's transaction, or undefined when all can.
 *
 * @example
 *   (await firstOutsideTransaction(migrations))?.id // '0004_tasks_index_concurrently'
 */
export async function firstOutsideTransaction(files: MigrationFile[]): Promise<MigrationFile | undefined> {
  for (const f of files) if (!(await runsInOneTransaction([f]))) return f;
  return undefined;
}

/**
 * A pool restore loads in ONE transaction on the pool database, so the pool's other tenants never
 * see half of it. When the pool is at another migration version than the backup, the rows go
 * through a staging schema built to the backup's version and migrated to head inside that
 * transaction: every migration file runs there. Refused (exit 2, before the safety backup or
 * anything else) when one of them must run outside a transaction, naming it. A pool at the
 * backup's version needs no migration in the transaction and restores whatever the files are.
 * `replacing`: the pool is used as it is; otherwise it is first migrated to head, as for a new
 * pool tenant, so the version it will be at is what is applied plus every file.
 */
export async function assertPoolRestoreInOneTransaction(
  fleet: Fleet,
  p: PlacedTenant,
  files: MigrationFile[],
  m: Manifest,
  backupId: string,
  replacing: boolean,
): Promise<void> {
  const outside = await firstOutsideTransaction(files);
  if (!outside) return;
  const applied = new Set<string>();
  if (await databaseExists(fleet, p.shard, p.database_name)) {
    const rows = await fleet.withClient(p.shard, p.database_name, (c) => readApplied(c, [p.schema_name]));
    for (const r of rows) applied.add(r.name);
  }
  if (!replacing) for (const f of files) applied.add(f.id);
  const backup = new Set(m.migrations.applied.map((a) => a.id));
  if (applied.size === backup.size && [...backup].every((id) => applied.has(id))) return;
  const poolVersion = [...applied].sort().at(-1) ?? '(none)';
  const target = targetId({ shard: p.shard, database: p.database_name, schema: p.schema_name });
  throw new UsageError(
    'MIGRATION_FILES',
    `backup ${backupId} is at migration version ${m.migrations.version ?? '(none)'} and the pool ${target} ${replacing ? 'is' : 'will be'} at ${poolVersion}: ` +
      `a pool restore then stages the rows in a schema built and migrated to head inside its one transaction, and ${basename(outside.file)} runs outside a transaction (-- tenantctl:no-transaction)`,
    `restore it as a schema or database tenant (--as <new-slug> --model schema), which is migrated step by step, or restore a backup taken at the pool's version ${poolVersion}`,
  );
}

/**
 * Of the tables about to be loaded, the plain ones that are still empty, truncated in the
 * caller's transaction: COPY FREEZE takes only a table made or truncated in the loading
 * transaction, and a placement built step by step made its tables in earlier ones. Truncating an
 * empty table changes nothing; a table that already holds rows (a migration's) loads plainly, as
 * it would in one transaction. Call after deferIndexes (its foreign keys are gone, so TRUNCATE
 * does not need the referencing tables too).
 */
export async function emptiedForFreeze(c: Pick<pg.ClientBase, 'query'>, schema: string, tables: string[]): Promise<Set<string>> {
  const plain = await plainTables(c, schema);
  const out = new Set<string>();
  for (const t of tables) {
    if (!plain.has(t)) continue;
    const { rows } = await c.query<{ found: boolean }>(`select exists (select 1 from ${qualified(schema, t)}) as found`);
    if (rows[0]?.found) continue;
    await c.query(`truncate table ${qualified(schema, t)}`);
    out.add(t);
  }
  return out;
}
