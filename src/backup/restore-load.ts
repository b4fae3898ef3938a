import { boundLockWait, LOAD_LOCK_WAIT_MS, lockWaitError } from '../copy/load-lock-wait.js';
import { InterruptedError } from '../operations/interrupt.js';
import { faultPoint } from '../operations/fault-points.js';
import type { ShardClient } from '../fleet/shard-connections.js';
import { inTransaction } from '../fleet/fleet.js';
import { TenantctlError } from '../errors.js';
import type { MigrationFile } from '../migrate/files.js';
import { MIGRATION_LOCK_CLASSID, migratePlacement, migrateTarget, type MigrationTarget } from '../migrate/apply-target.js';
import { ensureTrackingTable, readApplied } from '../migrate/tracking.js';
import type { OperationRecord } from '../operations/operation-record.js';
import { drivers, type PlacedTenant } from '../placement/drivers.js';
import { stagingPlacement } from '../placement/placement.js';
import type { DriverKind } from '../placement/types.js';
import { keyCondition } from '../placement/key-filter.js';
import { ident, qualified } from '../sql.js';
import { assertPoolCopyAllowed } from '../placement/pool/visibility.js';
import { copyTables } from '../copy/tables.js';
import { assertSameShape, loadTable } from '../copy/load.js';
import { advanceSequences, raiseSequences } from '../copy/sequences.js';
import { loadIntoPool, type ForeignKeyCheck } from '../copy/pool-load.js';
import { foreignKeyPath, poolLoadRole, poolTriggersNote, type ForeignKeyPath } from '../copy/pool-load-path.js';
import { buildPlacement } from '../build/at-files.js';
import { verifyLoaded } from '../build/digest.js';
import { intoFreshTables } from '../build/fresh-tables.js';
import { tableText, type OpenArchive } from './archive.js';
import type { BackupDeps } from './create.js';
import { planPoolLoad, poolLoadPlan, type PoolLoadPlan } from './restore-pool-version.js';

/** What a restore's load uses of its deps. */
export type LoadDeps = Pick<BackupDeps, 'config' | 'fleet' | 'onProgress'> & {
  migrations: MigrationFile[];
  /** A replace's interrupt: checked once more before the load commits. */
  signal?: AbortSignal;
};

/** How the archive is loaded: the files at the backup's version, its data key, and whether every migration runs in one transaction. */
export interface LoadHow {
  atVersion: MigrationFile[];
  dataKey: Buffer | null;
  oneTransaction: boolean;
  /** Into a pool: the bound on the load's lock waits (load-lock-wait.ts; default LOAD_LOCK_WAIT_MS). */
  lockWaitMs?: number;
}

export interface Loaded {
  rows: number;
  /** The role the rows were loaded as, and why row-level security did not apply (event log). */
  role: string;
  foreignKeys: ForeignKeyCheck;
  /** Into a pool: the path its foreign keys took and why, in the words a move's report uses (with the GRANT that gets the faster path). */
  foreignKeyCheck?: ForeignKeyPath;
  /** A pool tenant's version afterwards: its pool's (undefined: a new placement, at head). */
  version?: string | null;
}

/** One load under way: what `load` hands to the loader of the placement's kind. */
interface LoadRun {
  deps: LoadDeps;
  a: OpenArchive;
  how: LoadHow;
  p: PlacedTenant;
  replacing: boolean;
  op: OperationRecord;
  /** Load every table of the archive into `schema` of the open transaction, verify and advance sequences. */
  loadAll(c: ShardClient, schema: string, frozen: Set<string>): Promise<void>;
  /** Tests' kill point after the load. */
  hang(): Promise<void>;
  /** Rows loaded so far. */
  done(): number;
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
  deps: LoadDeps,
  a: OpenArchive,
  how: LoadHow,
  p: PlacedTenant,
  replacing: boolean,
  op: OperationRecord,
): Promise<Loaded> {
  const { config } = deps;
  const { dataKey } = how;
  const m = a.manifest;
  const newKey = p.key === m.tenant.key ? undefined : p.key;
  let done = 0;
  let total = 0;
  // `frozen`: the tables COPY FREEZE may load (made or truncated in this transaction; never
  // partitioned ones, which it refuses).
  const loadAll = async (c: ShardClient, schema: string, frozen: Set<string>) => {
    // A live source (restore --at) counts and digests its tables while the placement is built.
    await a.live?.digested;
    total = m.tables.reduce((n, t) => n + t.rows, 0);
    const have = await copyTables(c, schema, config);
    assertSameShape(have, m.tables, `${p.database_name}.${schema}`);
    await op.phase('load', { rows: 0, total });
    for (const t of m.tables) {
      const onRows = (r: number) => {
        deps.onProgress?.({ tenant: p.slug, table: t.table, rows: done + r, bytes: 0, total });
        void op.heartbeat({ rows: done + r, total }).catch(() => undefined);
      };
      // A Ctrl-C stops the load where it is (the COPY under way ends, and the load's transaction
      // with it), not after every row: a job's grace period before SIGKILL is seconds, not a tenant's size.
      const stopped = () => deps.signal?.aborted && new InterruptedError('stopped while loading, before the load committed');
      const before = stopped();
      if (before) throw before;
      await loadTable(c, schema, t, tableText(a, t, dataKey), newKey, onRows, {
        freeze: frozen.has(t.table),
        sha256: !a.live,
        signal: deps.signal,
      }).catch((err) => {
        throw stopped() || err;
      });
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
    // And past what they had handed out at the backup (format 6), which no integer column may show.
    if (m.sequences) await raiseSequences(c, schema, new Map(Object.entries(m.sequences)));
  };
  const hang = async () => {
    await op.phase('loaded', { rows: done, total });
    await faultPoint('restore.loaded');
    // The last clean point before the load commits (for a pool, the commit is the switch): a
    // Ctrl-C by now rolls the load back rather than letting it commit.
    if (deps.signal?.aborted) throw new InterruptedError('stopped before the load committed');
  };
  // Shared tables are loaded among the other tenants' rows; a placement of its own is built fresh.
  return LOADERS[drivers[p.model].kind]({ deps, a, how, p, replacing, op, loadAll, hang, done: () => done });
}

/** A placement of its own: built at the backup's files, loaded fresh, then migrated to head. */
async function loadFresh(x: LoadRun): Promise<Loaded> {
  const { deps, p, how, a, loadAll, hang, op } = x;
  const { fleet, config } = deps;
  const m = a.manifest;
  const { atVersion } = how;
  await op.phase('placement');
  // Built at exactly the backup's files (its applied set, not always a prefix of the folder),
  // loaded and checked against the manifest, then migrated to head: one transaction where the
  // files allow, else step by step with the load one transaction (src/build/at-files.ts).
  await buildPlacement(p, {
    fleet,
    config,
    files: atVersion,
    load: (c) =>
      // A fresh placement: indexes and foreign keys are built once after the load; its empty tables load frozen.
      intoFreshTables(c, p.schema_name, m, (frozen) => loadAll(c, p.schema_name, frozen)),
    afterLoad: hang,
    finalFiles: deps.migrations,
    failure: (out) =>
      new TenantctlError('RESTORE_FAILED', `migrating the restored placement failed: ${out.error?.message ?? 'unknown error'}`),
  });
  return { rows: x.done(), role: 'tenantctl (owner of the new placement)', foreignKeys: 'once per table' };
}

/** Shared tables: the tenant's rows loaded among the other tenants', at the pool's version. */
async function loadShared(x: LoadRun): Promise<Loaded> {
  const { deps, p, a, replacing, loadAll, hang } = x;
  const ms = x.how.lockWaitMs ?? LOAD_LOCK_WAIT_MS;
  const { fleet, config } = deps;
  const m = a.manifest;
  // Pool: the shared target is loaded at its own version and never migrated (its other tenants
  // would change with it); only one never migrated, which no tenant can be in, is made at head
  // first, as for a new pool tenant.
  if (!replacing) await preparePool(deps, p, a);
  let role = '';
  let foreignKeys: ForeignKeyCheck = 'row by row';
  let foreignKeyCheck: ForeignKeyPath | undefined;
  let pool: PoolLoadPlan | undefined;
  await fleet.withClient(p.shard, p.database_name, async (c) => {
    await ensureTrackingTable(c, MIGRATION_LOCK_CLASSID);
    const what = `the restore into ${p.shard}'s pool`;
    const at = {
      schema: p.schema_name,
      shard: p.shard,
      ms,
      code: 'RESTORE_FAILED' as const,
      what,
      longer: 'restore --lock-wait 5min waits longer',
    };
    await inTransaction(c, async () => {
      // A neighbour's lock on the shared tables stops the load after a while, named (load-lock-wait.ts).
      await boundLockWait(c, ms);
      role = await assertPoolCopyAllowed(c, p.schema_name, config, 'load');
      const tables = await copyTables(c, p.schema_name, config);
      if (replacing) {
        for (const t of [...tables].reverse()) {
          await c.query(
            `delete from ${qualified(p.schema_name, t.table)} where ${keyCondition(t.keyColumn, config.tenantKey.type, { param: '$1' })}`,
            [p.key],
          );
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
      // A pool at a later version than the backup is loaded through a staging schema.
      ({ foreignKeys } = await collisionsNamed(
        pool.staged ? loadStaged(c, x, intoPool, pool) : loadIntoPool(c, intoPool, () => loadAll(c, p.schema_name, new Set())),
        p,
      ));
      // The role asked after the load: the path is what the load did; the role's name and version say why.
      foreignKeyCheck = foreignKeyPath(foreignKeys, { intoPool: true, role: await poolLoadRole(c) });
      await hang();
    }).catch(async (err) => {
      throw await withTriggersNote(deps, p, m.tables, await lockWaitError(err, c, at));
    });
  });
  return { rows: x.done(), role, foreignKeys, foreignKeyCheck, version: pool?.version ?? null };
}

/**
 * Before a replace fences anything: refuse what the load of the tenant's kind would refuse.
 * Shared tables: a backup its pool cannot take at the pool's version (exit 2, nothing changed).
 */
export async function beforeReplace(deps: LoadDeps, live: PlacedTenant, a: OpenArchive): Promise<void> {
  await BEFORE_REPLACE[drivers[live.model].kind](deps, live, a);
}

const BEFORE_REPLACE: Record<DriverKind, (deps: LoadDeps, live: PlacedTenant, a: OpenArchive) => Promise<unknown>> = {
  'own-placement': async () => undefined,
  'shared-tables': (deps, live, a) => poolLoadPlan(deps.fleet, live, deps.migrations, a.manifest, a.id, true),
};

/** The load of each driver kind (a new kind fails to compile until it has one). */
const LOADERS: Record<DriverKind, (x: LoadRun) => Promise<Loaded>> = {
  'own-placement': loadFresh,
  'shared-tables': loadShared,
};

/**
 * A new tenant in shared tables: the pool target prepared and, when never migrated (no tenant
 * can be in it), made at head first, as for a new pool tenant.
 */
async function preparePool(deps: LoadDeps, p: PlacedTenant, a: OpenArchive): Promise<void> {
  const { config, fleet } = deps;
  await drivers[p.model].prepare(fleet, config, p);
  if ((await poolLoadPlan(fleet, p, deps.migrations, a.manifest, a.id, false)).fresh) {
    const poolTarget: MigrationTarget = { model: p.model, shard: p.shard, database: p.database_name, schema: p.schema_name };
    const out = await migratePlacement(fleet, poolTarget, deps.migrations, { config });
    if (out.status === 'failed')
      throw new TenantctlError(
        'RESTORE_FAILED',
        `migrating the new pool target ${out.target} failed: ${out.error?.message ?? out.reason ?? ''}`,
      );
  }
}

/**
 * The pool is at a later version than the backup: load into a staging schema made at the
 * backup's version, check it, migrate it to the pool's version (never further), then move the
 * rows into the shared tables.
 */
async function loadStaged(
  c: ShardClient,
  x: LoadRun,
  intoPool: Parameters<typeof loadIntoPool>[1],
  pool: PoolLoadPlan,
): Promise<{ foreignKeys: ForeignKeyCheck }> {
  const { p, op, how, loadAll } = x;
  const { config } = x.deps;
  const m = x.a.manifest;
  const staging = `tenantctl_restore_${op.id}`;
  const target: MigrationTarget = stagingPlacement(p.shard, p.database_name, staging);
  await c.query(`create schema ${ident(staging)}`);
  for (const files of [how.atVersion]) {
    const out = await migrateTarget(c, target, files, { config, withinTransaction: true, tenantLocked: true });
    if (out.status === 'failed')
      throw new TenantctlError('RESTORE_FAILED', `building the staging schema failed: ${out.error?.message ?? ''}`);
  }
  // Nobody sees the staging schema: its indexes and foreign keys are built once after the load.
  await intoFreshTables(c, staging, m, (frozen) => loadAll(c, staging, frozen));
  const up = await migrateTarget(c, target, pool.files, { config, withinTransaction: true, tenantLocked: true });
  if (up.status === 'failed')
    throw new TenantctlError(
      'RESTORE_FAILED',
      `migrating the staged rows to the pool's version ${pool.version} failed: ${up.error?.message ?? ''}`,
    );
  const staged = await copyTables(c, staging, config);
  assertSameShape(
    intoPool.tables,
    staged.map((s) => ({ ...s, rows: 0, sha256: '', hash: '' })),
    `${p.database_name}.${p.schema_name}`,
  );
  const loaded = await loadIntoPool(c, intoPool, async () => {
    for (const t of staged) await c.query(await stagedInsert(c, { staging, pool: p.schema_name }, t.table, t.columns));
  });
  await c.query(`drop schema ${ident(staging)} cascade`);
  await c.query('delete from tenantctl.schema_migrations where target_schema = $1', [staging]);
  await advanceSequences(
    c,
    p.schema_name,
    staged.map((s) => s.table),
  );
  if (m.sequences) await raiseSequences(c, p.schema_name, new Map(Object.entries(m.sequences)));
  return loaded;
}

/**
 * The statement that moves a staged table's rows into the pool's. The staging schema was built by
 * the migrations, so a type they create (an enum, a domain, a composite, and the arrays of them) is
 * the staging schema's own: such a column goes through its text form into the pool's type of the
 * same name. A GENERATED ALWAYS identity column keeps the backup's values (OVERRIDING SYSTEM VALUE),
 * as every other load does; the sequences are moved past them after.
 */
async function stagedInsert(c: ShardClient, schemas: { staging: string; pool: string }, table: string, columns: string[]): Promise<string> {
  const { rows } = await c.query<{ name: string; type: string; differs: boolean; always: boolean }>(
    `select pa.attname as name, quote_ident(tn.nspname) || '.' || quote_ident(t.typname) as type,
            sa.atttypid <> pa.atttypid as differs, pa.attidentity = 'a' as always
       from pg_attribute pa
       join pg_type t on t.oid = pa.atttypid join pg_namespace tn on tn.oid = t.typnamespace
       join pg_attribute sa on sa.attname = pa.attname and sa.attrelid = to_regclass(quote_ident($1) || '.' || quote_ident($3))
      where pa.attrelid = to_regclass(quote_ident($2) || '.' || quote_ident($3)) and pa.attnum > 0 and not pa.attisdropped`,
    [schemas.staging, schemas.pool, table],
  );
  const byName = new Map(rows.map((r) => [r.name, r]));
  const select = columns.map((col) => {
    const r = byName.get(col);
    return r?.differs ? `${ident(col)}::text::${r.type}` : ident(col);
  });
  const overriding = columns.some((col) => byName.get(col)?.always) ? ' overriding system value' : '';
  return `insert into ${qualified(schemas.pool, table)} (${columns.map(ident).join(', ')})${overriding} select ${select.join(', ')} from ${qualified(schemas.staging, table)}`;
}

/**
 * A unique key of a pool table that leaves out the tenant key (a surrogate `id` primary key) is
 * shared by every tenant of the pool: a backup's rows whose values another tenant's rows already
 * have cannot go in. PostgreSQL's bare "duplicate key value violates unique constraint" said
 * neither that nor what to do (a move says it at preflight); nothing was loaded either way.
 */
async function collisionsNamed<T>(load: Promise<T>, p: { slug: string; schema_name: string }): Promise<T> {
  try {
    return await load;
  } catch (err) {
    const e = err as { code?: string; constraint?: string; table?: string; detail?: string };
    if (e.code !== '23505') throw err;
    throw new TenantctlError(
      'RESTORE_FAILED',
      `rows of the backup collide with rows already in the pool: ${e.detail ?? 'a duplicate key'} (${p.schema_name}.${e.table ?? '?'}, constraint ${e.constraint ?? '?'}, a unique key without the tenant key, shared by every tenant of the pool); nothing was loaded: restore it into its own placement (--model schema or --model database), or add the tenant key to that key in a migration`,
    );
  }
}

/** A pool load refused by verification: the pool's own triggers that fired for each row, if any (poolTriggersNote). */
async function withTriggersNote(deps: LoadDeps, p: PlacedTenant, loaded: { table: string }[], err: unknown): Promise<unknown> {
  if (!(err instanceof TenantctlError) || err.code !== 'RESTORE_FAILED' || !err.message.startsWith('after loading, ')) return err;
  const note = await deps.fleet
    .withClient(p.shard, p.database_name, async (c) =>
      poolTriggersNote(
        c,
        p.schema_name,
        loaded.map((t) => t.table),
        await poolLoadRole(c),
        'restore',
      ),
    )
    .catch(() => '');
  return note ? new TenantctlError(err.code, err.message + note, err.hint, err.exitCode) : err;
}
