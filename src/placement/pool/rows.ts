import { assertPoolKeyType } from './key-type.js';
import { jobPool } from '../../fanout/job-pool.js';
import type { Config } from '../../config/types.js';
import type { Fleet } from '../../fleet/fleet.js';
import type { ShardClient } from '../../fleet/shard-connections.js';
import { literal, qualified } from '../../sql.js';
import { repairRlsPolicies, rlsState, tableIsProtected, type ScopedTable } from './rls.js';
import { scopedTablesInOrder } from '../scoped-tables.js';
import { ADMIN_DATABASE } from '../databases.js';
import type { CatalogPlacement } from '../placement.js';
import { keyCondition } from '../key-filter.js';

type PoolConfig = Pick<Config, 'tenantKey' | 'rls' | 'servingRole'>;

/** Where a pool tenant's rows live and which key selects them. */
export type PoolScope = Pick<CatalogPlacement, 'shard' | 'database_name' | 'schema_name' | 'key'>;

export interface KeyRows {
  table: string;
  rows: number;
}

/**
 * Make sure tenantctl's own role sees every row of the pool target before it counts or deletes:
 * a table not in the managed state (changed by hand, or never migrated since the policy design
 * changed) could filter it, and a delete would then match nothing and still "succeed". Repairs
 * in the caller's transaction.
 */
export async function ensureAdminSeesAll(c: ShardClient, schema: string, config: PoolConfig): Promise<{ repaired: boolean }> {
  const states = await rlsState(c, schema, config);
  if (!states.some((s) => !tableIsProtected(s, config))) return { repaired: false };
  await repairRlsPolicies(c, schema, config);
  return { repaired: true };
}

/** Rows carrying `key` in each tenant-scoped table of the schema (only tables with rows). */
export async function rowsWithKey(
  c: ShardClient,
  tables: ScopedTable[],
  schema: string,
  key: string,
  config: PoolConfig,
): Promise<KeyRows[]> {
  if (tables.length === 0) return [];
  const sql = tables
    .map(
      (t) =>
        `select ${literal(t.table)} as table, count(*)::int as rows from ${qualified(schema, t.table)} where ${keyCondition(t.column, config.tenantKey.type, { param: '$1' })}`,
    )
    .join(' union all ');
  const { rows } = await c.query<KeyRows>(sql, [key]);
  return rows.filter((r) => r.rows > 0);
}

/**
 * Rows a pool placement already holds for `key` (a deleted tenant's leftovers, or another
 * tenant's key): a new tenant with that key would see them. Empty when the database or schema
 * does not exist yet. Read-only apart from repairing tenantctl's own visibility.
 *
 * `atOnce` > 1 counts the tables on up to that many connections at once (the one holding the
 * transaction and spare ones the budget has free now): after a tenant's rows were deleted there
 * (a rollback of a move, a move back), each table's count visits every dead row of the key until
 * vacuum (120–420 ms for 200,000 dead rows on one connection, 100–180 ms on two). The transaction's
 * connection alone counts, as one statement, when it had to repair the policies (the others
 * would not see the repair before it commits) or when no spare connection is free.
 *
 * @example
 *   await poolKeyRows(fleet, config, { shard: 'us1', database_name: 'tenant_pool', schema_name: 'app', key: '42' })
 *   // [{ table: 'projects', rows: 3 }]
 */
export async function poolKeyRows(fleet: Fleet, config: PoolConfig, p: PoolScope, o: { atOnce?: number } = {}): Promise<KeyRows[]> {
  if (!(await databaseExists(fleet, p.shard, p.database_name))) return [];
  return fleet.withTransaction(p.shard, p.database_name, async (c) => {
    // The first look at a pool for a create or a move in: a config whose key type changed is named here, not met as a type error.
    await assertPoolKeyType(c, `${p.shard}/${p.database_name}/${p.schema_name}`, p.schema_name, config);
    const { repaired } = await ensureAdminSeesAll(c, p.schema_name, config);
    const tables = await scopedTablesInOrder(c, p.schema_name, config);
    const spare = repaired || tables.length < 2 ? 0 : Math.min((o.atOnce ?? 1) - 1, tables.length - 1);
    if (spare < 1) return rowsWithKey(c, tables, p.schema_name, p.key, config);
    return fleet.withSpareClients(p.shard, p.database_name, spare, (more) =>
      rowsWithKeyAtOnce([c, ...more], tables, p.schema_name, p.key, config),
    );
  });
}

/**
 * rowsWithKey with each table counted on the next free connection, children first (in
 * foreign-key order the big tables come last); the answer in the tables' order. Every
 * connection's count ends before a failure is thrown, so none goes back mid-statement.
 */
export async function rowsWithKeyAtOnce(
  cs: ShardClient[],
  tables: ScopedTable[],
  schema: string,
  key: string,
  config: PoolConfig,
): Promise<KeyRows[]> {
  const jobs = jobPool(cs);
  try {
    const counts = await Promise.all([...tables].reverse().map((t) => jobs.run((c) => rowsWithKey(c, [t], schema, key, config))));
    return counts.reverse().flat();
  } finally {
    await jobs.settled();
  }
}

export async function databaseExists(fleet: Fleet, shard: string, database: string): Promise<boolean> {
  const res = await fleet.withClient(shard, ADMIN_DATABASE, (c) => c.query('select 1 from pg_database where datname = $1', [database]));
  return (res.rowCount ?? 0) > 0;
}
