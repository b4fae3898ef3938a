import { refuseLargeObjects } from '../placement/large-objects.js';
import type pg from 'pg';
import type { Config } from '../config/types.js';
import type { Fleet } from '../fleet/fleet.js';
import { UsageError } from '../errors.js';
import type { MigrationFile } from '../migrate/files.js';
import { migratePlacement } from '../migrate/apply-target.js';
import { readApplied } from '../migrate/tracking.js';
import { drivers } from '../placement/drivers.js';
import { ADMIN_DATABASE } from '../placement/databases.js';
import { roleCarriesOver, scopeWhere, tenantRole } from '../placement/placement.js';
import { poolKeyRows, type KeyRows } from '../placement/pool/rows.js';
import { assertPoolCopyAllowed } from '../placement/pool/visibility.js';
import { copyTables, type CopyTable } from '../copy/tables.js';
import { copyOut, copyIn } from '../copy/streams.js';
import { ident, qualified } from '../sql.js';
import { pipeline } from 'node:stream/promises';
import type { MoveEnd, MovePlan } from './plan.js';
import { sharedTablesNotCopied } from '../placement/pool/shared-tables.js';
import { refuseTablesLeftBehind } from '../placement/tables-left-behind.js';
import { warmMoveConnections } from './warm.js';
import { settled, unsettle, type Settled } from '../settled.js';
import { LOAD_PARTS } from './pool-split.js';

export interface Preflight {
  /** The source's applied migrations, as files: an exclusive target is built at exactly these. */
  atVersion: MigrationFile[];
  version: string | null;
  tables: CopyTable[];
  /** Migrations applied to a pool target to bring it to the source's version. */
  targetMigrated: string[];
  /** Declared shared tables (tenantKey.shared) at the source: not copied, the target has its own. */
  sharedNotCopied: string[];
}

type Deps = { config: Config; fleet: Fleet; migrations: MigrationFile[] };

/**
 * The pool target's key count on this many connections at once: the two the move warmed there
 * (warm.ts), idle during the count; one per core of a 2-core shard host, no more.
 */
const KEY_COUNT_CONNECTIONS = LOAD_PARTS;
type Q = Pick<pg.ClientBase, 'query'>;

/**
 * Everything that can refuse a move, before anything changes (exit 2): both shards reachable;
 * the source's version present in the migrations folder (an exclusive target is built at it),
 * or a pool target at it (migrated forward first when behind; refused when ahead); a primary
 * key on every tenant-scoped table; the same tenant-scoped tables and columns on both sides
 * (the tenant-key column wherever the pool is involved); no rows of the key, and no primary-key
 * collision, in a pool target; nothing of the tenant already at an exclusive target.
 */
export async function preflight(deps: Deps, plan: MovePlan, o: { warm?: boolean } = {}): Promise<Preflight> {
  const { config, fleet } = deps;
  // The offline move's connections open while the shards' reachability is checked (warm.ts).
  await Promise.all([
    assertReachable(fleet, [...new Set([plan.from.shard, plan.to.shard])]),
    o.warm ? warmMoveConnections(fleet, plan) : undefined,
  ]);
  // A pool target's rows of the key are counted while the source is read: both only read, and
  // the count (an index scan per table, slow after many deletes of the key) no longer waits for it.
  const keyRowsEarly = drivers[plan.to.model].moveTarget<Settled<KeyRows[]> | null>({
    sharedTables: () => settled(poolKeyRows(fleet, config, poolScope(plan), { atOnce: KEY_COUNT_CONNECTIONS })),
    ownPlacement: async () => null,
  });
  // The source's reads on up to three of its connections at once (warmed, idle): each is a few
  // short catalog queries, so their round trips overlap; a failure is thrown in the order they were listed.
  const onSource = <T>(fn: (c: pg.ClientBase) => Promise<T>) => settled(fleet.withClient(plan.from.shard, plan.from.database, fn));
  const [appliedAt, tablesAt, sharedAt] = await Promise.all([
    onSource((c) => readApplied(c, [plan.from.schema])),
    onSource(async (c) => {
      const tables = await copyTables(c, plan.from.schema, config);
      const noPk = await tablesWithoutPk(
        c,
        plan.from.schema,
        tables.map((t) => t.table),
      );
      return { tables, noPk };
    }),
    onSource(async (c) => {
      const shared = await sharedTablesNotCopied(c, plan.from.schema, config, `move of ${plan.from.target}`);
      await refuseTablesLeftBehind(c, plan.from.schema, config, plan.from.model, `move of ${plan.from.target}`);
      await drivers[plan.from.model].assertCopyAllowed(c, plan.from.schema, config, 'read');
      await refuseLargeObjects(
        c,
        { slug: plan.tenant, model: plan.from.model, shard: plan.from.shard, database: plan.from.database },
        'move',
        'MOVE_FAILED',
      );
      return shared;
    }),
  ]);
  const src = { applied: unsettle(appliedAt), ...unsettle(tablesAt), shared: unsettle(sharedAt) };
  if (src.tables.length === 0)
    throw new UsageError(
      'MOVE_FAILED',
      `${plan.from.target} has no tenant-scoped tables (with the tenant-key column ${config.tenantKey.column})`,
      'check tenantKey in the config',
    );
  if (src.noPk.length) {
    throw new UsageError(
      'MOVE_FAILED',
      `tenant-scoped table${src.noPk.length > 1 ? 's' : ''} ${src.noPk.join(', ')} of ${plan.from.target} ha${src.noPk.length > 1 ? 've' : 's'} no primary key; a move cannot prove its copy row for row without one; nothing was changed`,
      'add a primary key in a migration (tenantctl migrate create), run migrate up, then move',
    );
  }
  const byId = new Map(deps.migrations.map((m) => [m.id, m]));
  const missing = src.applied.filter((a) => byId.get(a.name)?.checksum !== a.checksum).map((a) => a.name);
  if (missing.length) {
    throw new UsageError(
      'MIGRATION_FILES',
      `${plan.from.target} is at migrations this folder does not hold (or holds changed): ${missing.join(', ')}; nothing was changed`,
      'run the move from a checkout with the migrations the tenant has',
    );
  }
  const appliedIds = new Set(src.applied.map((a) => a.name));
  const atVersion = deps.migrations.filter((m) => appliedIds.has(m.id));
  const version = atVersion.at(-1)?.id ?? null;
  const targetMigrated = await drivers[plan.to.model].moveTarget<string[]>({
    sharedTables: async () => sharedTargetReady(deps, plan, src.tables, atVersion, appliedIds, (await keyRowsEarly)!),
    ownPlacement: async () => {
      // A file that runs outside a transaction is fine: the target is built step by step then (build-target.ts).
      await assertNothingAt(deps, plan);
      return [];
    },
  });
  return { atVersion, version, tables: src.tables, targetMigrated, sharedNotCopied: src.shared };
}

/**
 * Shared tables at the target: brought to the source's version, holding no row with the tenant's
 * key, loadable under their row-level security, the same tables as the source's, no primary key
 * the tenant's rows would collide with. Returns the migrations applied to the target.
 */
async function sharedTargetReady(
  deps: Deps,
  plan: MovePlan,
  tables: CopyTable[],
  atVersion: MigrationFile[],
  appliedIds: Set<string>,
  keyRowsEarly: Settled<KeyRows[]>,
): Promise<string[]> {
  const { config, fleet } = deps;
  const targetMigrated = await poolTargetAtVersion(deps, plan.to, { key: plan.key, slug: plan.tenant }, atVersion, appliedIds);
  // Counted before the migrations; counted again after any (a migration may write rows).
  const found = targetMigrated.length ? await poolKeyRows(fleet, config, poolScope(plan)) : unsettle(keyRowsEarly);
  if (found.length) {
    throw new UsageError(
      'KEY_IN_USE',
      `the pool target ${plan.to.target} already has rows with ${plan.tenant}'s key ${plan.key}: ${found.map((f) => `${f.table} (${f.rows})`).join(', ')}; nothing was changed`,
      "remove those rows (a deleted tenant's leftovers?) or move the tenant elsewhere",
    );
  }
  await fleet.withClient(plan.to.shard, plan.to.database, async (t) => {
    await assertPoolCopyAllowed(t, plan.to.schema, config, 'load');
    assertSameTables(tables, await copyTables(t, plan.to.schema, config), plan, config);
    await fleet.withClient(plan.from.shard, plan.from.database, (s) => assertNoPkCollisions(s, t, plan, tables, config));
  });
  return targetMigrated;
}

/** Every shard of the move reachable (checked at once); the first that is not, in order, named. */
async function assertReachable(fleet: Fleet, shards: string[]): Promise<void> {
  const tried = await Promise.all(shards.map((s) => settled(fleet.assertReachable(s, ADMIN_DATABASE))));
  for (const [i, t] of tried.entries()) {
    if ('err' in t)
      throw new UsageError(
        'UNREACHABLE',
        `shard ${shards[i]} cannot be reached: ${(t.err as Error).message}; nothing was changed`,
        'check it with tenantctl doctor, then run the move again',
      );
  }
}

const poolScope = (plan: MovePlan) => ({
  shard: plan.to.shard,
  database_name: plan.to.database,
  schema_name: plan.to.schema,
  key: plan.key,
});

/** A promise's outcome kept for later (a rejection not left unhandled while other work goes on). */
async function tablesWithoutPk(c: Q, schema: string, tables: string[]): Promise<string[]> {
  const { rows } = await c.query<{ t: string }>(
    `select c.relname as t from pg_class c join pg_namespace n on n.oid = c.relnamespace
      where n.nspname = $1 and c.relname = any($2)
        and not exists (select 1 from pg_index i where i.indrelid = c.oid and i.indisprimary) order by 1`,
    [schema, tables],
  );
  return rows.map((r) => r.t);
}

/** Prepare the pool target and bring it to the source's version; refuse one that is ahead. */
async function poolTargetAtVersion(
  deps: Deps,
  to: MoveEnd,
  tenant: { key: string; slug: string },
  atVersion: MigrationFile[],
  appliedIds: Set<string>,
): Promise<string[]> {
  const { fleet, config } = deps;
  // Without the key: a switch fence an earlier life of it left in the target pool (moved away, or
  // deleted) stays until this move switches (switchCatalog lifts it). Lifted here, a move that then
  // failed left the pool taking the key's writes from a stale URL, rows the next move in removed.
  const placed = { slug: '', key: '', model: to.model, shard: to.shard, database_name: to.database, schema_name: to.schema };
  await drivers[to.model].prepare(fleet, config, placed);
  const have = await fleet.withClient(to.shard, to.database, (c) => readApplied(c, [to.schema]));
  const ahead = have.map((h) => h.name).filter((n) => !appliedIds.has(n));
  if (ahead.length) {
    throw new UsageError(
      'MIGRATION_FAILED',
      `the pool target ${to.target} is at a newer migration version than the tenant (it has ${ahead.join(', ')}); nothing was changed`,
      `migrate the tenant first (tenantctl migrate up --tenant ${tenant.slug}), then move it`,
    );
  }
  if (have.length === atVersion.length) return [];
  const out = await migratePlacement(fleet, { model: to.model, shard: to.shard, database: to.database, schema: to.schema }, atVersion, {
    config,
  });
  if (out.status === 'failed') {
    throw new UsageError(
      'MIGRATION_FAILED',
      `the pool target ${to.target} is behind the tenant and migrating it failed: ${(out.error?.message ?? out.reason ?? 'unknown').replace(/\.$/, '')}; the tenant was not moved`,
      out.error?.hint ?? `fix the target (tenantctl migrate up --shard ${to.shard}), then move`,
    );
  }
  return out.applied;
}

/** Both sides have the same tenant-scoped tables with the same columns. */
function assertSameTables(src: CopyTable[], dst: CopyTable[], plan: MovePlan, config: Config): void {
  const d = new Map(dst.map((t) => [t.table, t]));
  const s = new Set(src.map((t) => t.table));
  const problems: string[] = [];
  for (const t of src) {
    const o = d.get(t.table);
    if (!o) problems.push(`${t.table} is not tenant-scoped at the target (no ${config.tenantKey.column} column there, or no table)`);
    else if ([...t.columns].sort().join(',') !== [...o.columns].sort().join(','))
      problems.push(`${t.table} has columns (${t.columns.join(', ')}) at the source, (${o.columns.join(', ')}) at the target`);
  }
  for (const t of dst)
    if (!s.has(t.table))
      problems.push(
        `${t.table} is tenant-scoped at the target but not at the source (its rows there have no ${config.tenantKey.column} column)`,
      );
  if (problems.length)
    throw new UsageError(
      'MOVE_FAILED',
      `${plan.from.target} and ${plan.to.target} do not have the same tenant-scoped tables: ${problems.join('; ')}; nothing was changed`,
      'bring both to the same migrations, with the tenant-key column on every tenant table, then move',
    );
}

/**
 * A pool target must not already hold any of the tenant's primary keys. Where the key column is
 * part of the primary key (the usual shape) the key check above proves it; otherwise the source's
 * primary keys are streamed into a temporary table at the target and joined (no table in memory).
 */
async function assertNoPkCollisions(
  s: pg.ClientBase,
  t: pg.ClientBase,
  plan: MovePlan,
  tables: CopyTable[],
  config: Config,
): Promise<void> {
  const clashes: string[] = [];
  for (const tb of tables) {
    const { rows } = await s.query<{ col: string; type: string }>(
      `select a.attname as col, format_type(a.atttypid, a.atttypmod) as type
         from pg_index i join pg_attribute a on a.attrelid = i.indrelid and a.attnum = any(i.indkey)
        where i.indrelid = $1::regclass and i.indisprimary order by array_position(i.indkey::int2[], a.attnum)`,
      [qualified(plan.from.schema, tb.table)],
    );
    if (rows.length === 0 || rows.some((r) => r.col === tb.keyColumn)) continue;
    const cols = rows.map((r) => ident(r.col)).join(', ');
    const tmp = `tenantctl_move_pk_${tb.table}`.slice(0, 63);
    await t.query('begin');
    try {
      await t.query(`create temp table ${ident(tmp)} (${rows.map((r) => `${ident(r.col)} ${r.type}`).join(', ')}) on commit drop`);
      const where = scopeWhere({ model: plan.from.model, key: plan.key }, tb.keyColumn, config.tenantKey.type);
      await pipeline(
        copyOut(s, `copy (select ${cols} from ${qualified(plan.from.schema, tb.table)}${where}) to stdout`),
        copyIn(t, `copy ${ident(tmp)} from stdin`),
      );
      const r = await t.query<{ n: number }>(
        `select count(*)::int as n from ${qualified(plan.to.schema, tb.table)} x join ${ident(tmp)} using (${cols})`,
      );
      if (r.rows[0].n > 0) clashes.push(`${tb.table} (${r.rows[0].n} primary key${r.rows[0].n > 1 ? 's' : ''})`);
    } finally {
      await t.query('rollback');
    }
  }
  if (clashes.length) {
    throw new UsageError(
      'MOVE_FAILED',
      `primary keys of ${plan.tenant} already exist in the pool target ${plan.to.target}: ${clashes.join(', ')}; nothing was changed`,
      'those rows belong to another tenant: move this tenant to another shard or model',
    );
  }
}

/**
 * An exclusive target must not exist yet (nothing is adopted). Its role may exist only when it
 * is the tenant's own role on the same cluster (a schema ↔ database move within a shard).
 */
async function assertNothingAt(deps: Deps, plan: MovePlan): Promise<void> {
  const { fleet } = deps;
  const to = plan.to;
  // The tenant's own role at the source is its role here too (roles are cluster-wide): not a leftover.
  const ownRole = roleCarriesOver(plan.from, to);
  const found = await drivers[to.model].existing(fleet, {
    model: to.model,
    shard: to.shard,
    database: to.database,
    schema: to.schema,
    slug: plan.tenant,
    role: ownRole ? null : tenantRole({ slug: plan.tenant, model: to.model }),
  });
  if (found.length) {
    throw new UsageError(
      'TENANT_EXISTS',
      `${found.join(' and ')} already exist${found.length === 1 ? 's' : ''} on shard ${to.shard}, where the move would create ${plan.tenant}'s placement; tenantctl did not make ${found.length === 1 ? 'it' : 'them'} for this move and will not adopt ${found.length === 1 ? 'it' : 'them'}; nothing was changed`,
      'inspect and drop it yourself if it is a leftover, or move the tenant elsewhere',
    );
  }
}
