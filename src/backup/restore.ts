import { redactText } from '../config/redact.js';
import { TenantctlError, errorMessage } from '../errors.js';
import type { TenantResult } from '../fanout/result.js';
import type { ShardClient } from '../fleet/shard-connections.js';
import type { MigrationFile } from '../migrate/files.js';
import { MIGRATION_LOCK_CLASSID, migratePlacement, migrateTarget, type MigrationTarget } from '../migrate/apply-target.js';
import { ensureTrackingTable, readApplied } from '../migrate/tracking.js';
import type { OperationRecord } from '../operations/operation-record.js';
import { drivers, type PlacedTenant } from '../placement/drivers.js';
import { MODEL_TRAITS, stagingPlacement } from '../placement/placement.js';
import { ident, qualified } from '../sql.js';
import { assertPoolCopyAllowed } from '../copy/pool-visibility.js';
import { copyTables, plainTables } from '../copy/tables.js';
import { assertSameShape, loadTable, verifyLoaded } from '../copy/load.js';
import { advanceSequences } from '../copy/sequences.js';
import { deferIndexes } from '../copy/deferred-indexes.js';
import { loadIntoPool, type ForeignKeyCheck } from '../copy/pool-load.js';
import { inTransaction } from '../fleet/fleet.js';
import { tableText, type OpenArchive } from './archive.js';
import type { BackupDeps } from './create.js';
import { emptiedForFreeze } from '../copy/freeze.js';
import { planPoolLoad, poolLoadPlan, type PoolLoadPlan } from './restore-pool-version.js';
import { faultAction, faultPoint } from '../operations/fault-points.js';

export interface RestoreDeps extends BackupDeps {
  migrations: MigrationFile[];
}

export interface RestoreOptions {
  backup: string;
  as?: string;
  shard?: string;
  model?: string;
  replace?: boolean;
}

export interface RestoreResult extends TenantResult {
  backup: string;
  key?: string;
  rows?: number;
  /** --replace: the backup taken of the tenant first. */
  safetyBackup?: string;
  replaced?: boolean;
  /** --replace of a schema or database tenant: its role (the names in `target` and the role are the application's, the same as before). */
  role?: string;
  /** --replace: how long the tenant's writes were refused (from the restore's first step to its switch). */
  writesRefusedMs?: number;
  /** --replace: how long the tenant's role could not connect (a database tenant's rename); 0 for a schema tenant. */
  unreachableMs?: number;
  /** --replace: the application's sessions ended at the replaced placement. */
  endedSessions?: number;
  warnings?: string[];
  /** How the restored rows' foreign keys were checked (see ForeignKeyCheck in src/copy/pool-load.ts). */
  foreignKeys?: ForeignKeyCheck;
}

/** How the archive is loaded: the files at the backup's version, its data key, and whether every migration runs in one transaction. */
export interface LoadHow {
  atVersion: MigrationFile[];
  dataKey: Buffer | null;
  oneTransaction: boolean;
}

/**
 * After a failed load: remove what it made outside a transaction that rolled back (see
 * `undoCreate`); a placement built step by step goes whole, the tenant's role kept when it is a
 * live tenant's. Returns why it could not be removed, or undefined: what is left stays recorded in
 * the operation row for the next restore of the tenant (restore-leftovers.ts).
 */
export async function undoFresh(deps: RestoreDeps, p: PlacedTenant, how: LoadHow, o: { keepRole: boolean }): Promise<string | undefined> {
  const { fleet, config } = deps;
  const driver = drivers[p.model];
  try {
    if (how.oneTransaction || MODEL_TRAITS[p.model].sharedTables) await driver.undoCreate(fleet, config, p, o);
    else if (o.keepRole) await driver.removeKeepingRole(fleet, config, p, { roleStaysInDatabase: true });
    else await driver.remove(fleet, config, p);
    return undefined;
  } catch (err) {
    return redactText(errorMessage(err));
  }
}

/** Tests' kill point: the placement is committed, the catalog not yet written. */
export async function hangAfterCommit(op: OperationRecord): Promise<void> {
  if (!faultAction('restore.committed')) return;
  await op.phase('committed');
  await faultPoint('restore.committed');
}

export interface Loaded {
  rows: number;
  /** The role the rows were loaded as, and why row-level security did not apply (event log). */
  role: string;
  foreignKeys: ForeignKeyCheck;
  /** A pool tenant's version afterwards: its pool's (undefined: a new placement, at head). */
  version?: string | null;
}

/**
 * Load the archive into the placement in ONE transaction: (exclusive models) the placement made
 * at the backup's version, the rows loaded and checked, then migrated to head and granted; (pool)
 * the rows (after deleting the tenant's current ones, when replacing) loaded and checked in the
 * shared tables at the pool's version, through a staging schema when the backup is older.
 * An exclusive placement whose migrations cannot all run in one transaction is built step by
 * step instead, with the load, its checks and the sequences still in one transaction.
 */
export async function load(
  deps: RestoreDeps,
  a: OpenArchive,
  how: LoadHow,
  p: PlacedTenant,
  replacing: boolean,
  op: OperationRecord,
): Promise<Loaded> {
  const { config, fleet } = deps;
  const { atVersion, dataKey } = how;
  const m = a.manifest;
  const total = m.tables.reduce((n, t) => n + t.rows, 0);
  const newKey = p.key === m.tenant.key ? undefined : p.key;
  let done = 0;
  // `frozen`: the tables COPY FREEZE may load (made or truncated in this transaction; never
  // partitioned ones, which it refuses).
  const loadAll = async (c: ShardClient, schema: string, frozen: Set<string>) => {
    const have = await copyTables(c, schema, config);
    assertSameShape(have, m.tables, `${p.database_name}.${schema}`);
    await op.phase('load', { rows: 0, total });
    for (const t of m.tables) {
      const onRows = (r: number) => {
        deps.onProgress?.({ tenant: p.slug, table: t.table, rows: done + r, bytes: 0, total });
        void op.heartbeat({ rows: done + r, total }).catch(() => undefined);
      };
      await loadTable(c, schema, t, tableText(a, t, dataKey), newKey, onRows, { freeze: frozen.has(t.table) });
      done += t.rows;
    }
    await op.phase('verify', { rows: done, total });
    await verifyLoaded(
      c,
      { model: schema === p.schema_name ? p.model : stagingPlacement(p.shard, p.database_name, schema).model, schema, key: p.key },
      m.tables,
      config,
    );
    await advanceSequences(
      c,
      schema,
      m.tables.map((t) => t.table),
    );
  };
  const hang = async () => {
    await op.phase('loaded', { rows: done, total });
    await faultPoint('restore.loaded');
  };

  if (!MODEL_TRAITS[p.model].sharedTables) {
    const target: MigrationTarget = { model: p.model, shard: p.shard, database: p.database_name, schema: p.schema_name };
    const migrate = async (c: ShardClient, files: MigrationFile[], withinTransaction = true) => {
      // Under the tenant's lock: the placement's lock in its database is not needed (tenantLocked).
      const out = await migrateTarget(c, target, files, { config, withinTransaction, tenantLocked: true });
      if (out.status === 'failed')
        throw new TenantctlError('RESTORE_FAILED', `migrating the restored placement failed: ${out.error?.message ?? 'unknown error'}`);
    };
    await op.phase('placement');
    if (!how.oneTransaction) {
      // A migration must run outside a transaction (CREATE INDEX CONCURRENTLY): as
      // createPlacementAtVersion does then, step by step, with the backup's exact files (its
      // applied set, not a prefix of the folder). Each step commits; the placement was recorded
      // in the operation row before (restore-leftovers.ts), and nobody sees it before the catalog
      // names it. The load, its checks against the manifest and the sequences are ONE transaction.
      const driver = drivers[p.model];
      await driver.prepare(fleet, config, p);
      await fleet.withClient(p.shard, p.database_name, async (c) => {
        await migrate(c, atVersion, false);
        await inTransaction(c, async () => {
          const recreate = await deferIndexes(c, p.schema_name, m.constraints);
          const frozen = await emptiedForFreeze(
            c,
            p.schema_name,
            m.tables.map((t) => t.table),
          );
          await loadAll(c, p.schema_name, frozen);
          await recreate();
        });
        await hang();
        await op.phase('migrate');
        await migrate(c, deps.migrations, false);
      });
      await driver.finish(fleet, config, p);
      return { rows: done, role: 'tenantctl (owner of the new placement)', foreignKeys: 'once per table' };
    }
    await drivers[p.model].createInOneTransaction!(fleet, config, p, {
      before: (c) => ensureTrackingTable(c, MIGRATION_LOCK_CLASSID),
      inside: async (c) => {
        await migrate(c, atVersion);
        // A fresh placement: indexes and foreign keys are built once after the load.
        const recreate = await deferIndexes(c, p.schema_name, m.constraints);
        // Tables this transaction made load frozen.
        await loadAll(c, p.schema_name, await plainTables(c, p.schema_name));
        await recreate();
        await migrate(c, deps.migrations);
        await hang();
      },
    });
    return { rows: done, role: 'tenantctl (owner of the new placement)', foreignKeys: 'once per table' };
  }

  // Pool: the shared target is loaded at its own version and never migrated (its other tenants
  // would change with it); only one never migrated, which no tenant can be in, is made at head
  // first, as for a new pool tenant.
  if (!replacing) {
    await drivers[p.model].prepare(fleet, config, p);
    if ((await poolLoadPlan(fleet, p, deps.migrations, m, a.id, false)).fresh) {
      const poolTarget: MigrationTarget = { model: p.model, shard: p.shard, database: p.database_name, schema: p.schema_name };
      const out = await migratePlacement(fleet, poolTarget, deps.migrations, { config });
      if (out.status === 'failed')
        throw new TenantctlError(
          'RESTORE_FAILED',
          `migrating the new pool target ${out.target} failed: ${out.error?.message ?? out.reason ?? ''}`,
        );
    }
  }
  let role = '';
  let foreignKeys: ForeignKeyCheck = 'row by row';
  let pool: PoolLoadPlan | undefined;
  await fleet.withClient(p.shard, p.database_name, async (c) => {
    await ensureTrackingTable(c, MIGRATION_LOCK_CLASSID);
    await inTransaction(c, async () => {
      role = await assertPoolCopyAllowed(c, p.schema_name, config, 'load');
      const tables = await copyTables(c, p.schema_name, config);
      if (replacing) {
        for (const t of [...tables].reverse()) {
          await c.query(`delete from ${qualified(p.schema_name, t.table)} where ${ident(t.keyColumn)} = $1::${config.tenantKey.type}`, [
            p.key,
          ]);
        }
      }
      // The pool's version read again in the load's transaction: the plan checked before is redone
      // on what is there now (a migrate up may have run since; it is refused the same way).
      pool = await planPoolLoad(deps.migrations, await readApplied(c, [p.schema_name]), m, { backupId: a.id, pool: p, replacing: true });
      // The tenant's rows go into the shared tables with their foreign keys checked once per
      // tenant when the role may (no table locks: the pool's other tenants keep working).
      const intoPool = {
        schema: p.schema_name,
        tables,
        key: p.key,
        keyType: config.tenantKey.type,
        code: 'RESTORE_FAILED' as const,
        constraints: m.constraints,
      };
      if (!pool.staged) {
        ({ foreignKeys } = await loadIntoPool(c, intoPool, () => loadAll(c, p.schema_name, new Set())));
      } else {
        // The pool is at a later version than the backup: load into a staging schema made at the
        // backup's version, check it, migrate it to the pool's version (never further), then move
        // the rows into the shared tables.
        const staging = `tenantctl_restore_${op.id}`;
        const target: MigrationTarget = stagingPlacement(p.shard, p.database_name, staging);
        await c.query(`create schema ${ident(staging)}`);
        for (const files of [atVersion]) {
          const out = await migrateTarget(c, target, files, { config, withinTransaction: true, tenantLocked: true });
          if (out.status === 'failed')
            throw new TenantctlError('RESTORE_FAILED', `building the staging schema failed: ${out.error?.message ?? ''}`);
        }
        // Nobody sees the staging schema: its indexes and foreign keys are built once after the load.
        const recreate = await deferIndexes(c, staging, m.constraints);
        await loadAll(c, staging, new Set());
        await recreate();
        const up = await migrateTarget(c, target, pool.files, { config, withinTransaction: true, tenantLocked: true });
        if (up.status === 'failed')
          throw new TenantctlError(
            'RESTORE_FAILED',
            `migrating the staged rows to the pool's version ${pool.version} failed: ${up.error?.message ?? ''}`,
          );
        const staged = await copyTables(c, staging, config);
        assertSameShape(
          tables,
          staged.map((s) => ({ ...s, rows: 0, sha256: '', hash: '' })),
          `${p.database_name}.${p.schema_name}`,
        );
        ({ foreignKeys } = await loadIntoPool(c, intoPool, async () => {
          for (const t of staged) {
            const cols = t.columns.map(ident).join(', ');
            await c.query(`insert into ${qualified(p.schema_name, t.table)} (${cols}) select ${cols} from ${qualified(staging, t.table)}`);
          }
        }));
        await c.query(`drop schema ${ident(staging)} cascade`);
        await c.query('delete from tenantctl.schema_migrations where target_schema = $1', [staging]);
        await advanceSequences(
          c,
          p.schema_name,
          staged.map((s) => s.table),
        );
      }
      await hang();
    });
  });
  return { rows: done, role, foreignKeys, version: pool?.version ?? null };
}
