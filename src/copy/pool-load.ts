import { searchPathSetting } from '../placement/target-search-path.js';
import type pg from 'pg';
import type { ErrorCode } from '../errors.js';
import { checkDeferredUniques } from './deferred-unique-check.js';
import { checkForeignKeysOnce, type FkCheckReport } from './fk-check.js';
import { holdForSharedLoad, type ConstraintState } from './not-valid-constraints.js';
import type { CopyTable } from './tables.js';

type Q = Pick<pg.ClientBase, 'query'>;

/**
 * How a load's foreign keys were checked, for reports and events:
 *  - `once per tenant`: a pool load without the per-row triggers, then one anti-join per foreign
 *    key over the tenant's rows (no table locks; other tenants keep working);
 *  - `row by row`: a pool load with the referential triggers firing for every row (the shard role
 *    may not set session_replication_role);
 *  - `once per table`: foreign keys dropped and re-added around the load (a new placement nobody
 *    sees yet, or a pool with `move --fast-load`, which locks its tables meanwhile).
 */
export type ForeignKeyCheck = 'once per tenant' | 'row by row' | 'once per table';

/**
 * Stop triggers firing for the rest of this transaction's load, if the role may:
 * `session_replication_role = replica` is what logical replication's apply worker runs with, so a
 * copy of rows that were already checked, and already went through the application's triggers
 * where they were first written, is not checked or triggered again row by row. PostgreSQL 15 lets
 * a superuser grant it to a role (`GRANT SET ON PARAMETER session_replication_role TO …`); without
 * the grant this answers false and changes nothing. Tried in a savepoint so a refusal does not
 * abort the caller's transaction; `set local` dies with the transaction, whatever happens.
 */
export async function triggersOff(c: Q): Promise<boolean> {
  await c.query('savepoint tenantctl_replica');
  try {
    await c.query('set local session_replication_role = replica');
    await c.query('release savepoint tenantctl_replica');
    return true;
  } catch (err) {
    if ((err as { code?: string }).code !== '42501') throw err;
    await c.query('rollback to savepoint tenantctl_replica');
    await c.query('release savepoint tenantctl_replica');
    return false;
  }
}

/** Triggers fire again (for whatever the transaction does after the load). */
export async function triggersOn(c: Q): Promise<void> {
  await c.query('set local session_replication_role = origin');
}

/**
 * Plan the referential triggers' per-row lookups as index scans for the rest of this
 * transaction's load; answers how to put the setting back. Each row's check is a one-key query
 * PostgreSQL plans once per backend (ri_triggers.c), and for a parent table of one page (a
 * lookup table like task_statuses, a young pool's root table) the planner picks a sequential
 * scan: every check then asks the kernel for the table's size (an lseek) and tests every row
 * of it, about a fifth of a row-by-row load's CPU on the target (perf, 200,000 rows). A unique
 * index finds the one row without either. Bitmap scans off too: with the sequential scan off, a
 * parent's statistics from before the load (a hundred projects, tenant_id in two of them) had the
 * planner read all of the tenant's parents through another index (projects_owner_idx) and filter
 * them by id: `tasks → projects` checked 110,000 rows in 1.36 s that way, 0.47 s by the primary
 * key (EXPLAIN ANALYZE of the insert, "Trigger for constraint"). No privilege and no lock: planner
 * settings of this transaction only; the COPY itself reads nothing.
 */
export async function checksByIndex(c: Q): Promise<() => Promise<void>> {
  const { rows } = await c.query<{ seq: string; bitmap: string }>(
    `select current_setting('enable_seqscan') as seq, current_setting('enable_bitmapscan') as bitmap,
            set_config('enable_seqscan', 'off', true), set_config('enable_bitmapscan', 'off', true)`,
  );
  return async () => {
    await c.query(`select set_config('enable_seqscan', $1, true), set_config('enable_bitmapscan', $2, true)`, [
      rows[0].seq,
      rows[0].bitmap,
    ]);
  };
}

export interface PoolLoadScope {
  schema: string;
  tables: CopyTable[];
  key: string;
  keyType: string;
  /** The error code a foreign-key violation fails with (the command's own). */
  code: ErrorCode;
  /** The source's constraints (a manifest's, or read at a move's source); undefined when not recorded. */
  constraints?: ConstraintState[];
}

/**
 * Run `load` (rows of ONE tenant into shared pool tables, in the caller's transaction) with its
 * foreign keys checked once per tenant when the role may switch triggers off, else row by row.
 * Either way nothing commits unless every loaded row's parents exist. Rows that break a NOT VALID
 * constraint at the source go in as they are, the constraint kept NOT VALID for every tenant
 * (holdForSharedLoad: `held` names what was dropped and re-added in the transaction).
 *
 * @example
 *   const { foreignKeys } = await loadIntoPool(c, { schema: 'app', tables, key, keyType: 'uuid', code: 'MOVE_FAILED' }, () => copyRows());
 */
export async function loadIntoPool<T>(
  c: Q,
  scope: PoolLoadScope,
  load: () => Promise<T>,
): Promise<{ result: T; foreignKeys: ForeignKeyCheck; check?: FkCheckReport; held: string[] }> {
  // The pool's own triggers fire on a load without the grant: with the path they were written for.
  await c.query(`select ${searchPathSetting(scope.schema)}`);
  const off = await triggersOff(c);
  const names = scope.tables.map((t) => t.table);
  const hold = await holdForSharedLoad(c, scope.schema, names, scope.constraints, {
    foreignKeys: off ? 'checked once' : 'triggers',
    code: scope.code,
  });
  const back = off ? undefined : await checksByIndex(c);
  const result = await load();
  await back?.();
  await hold.putBack();
  if (!off) return { result, foreignKeys: 'row by row', held: hold.held };
  await triggersOn(c);
  const check = await checkForeignKeysOnce(c, scope.schema, scope.tables, scope.key, scope.keyType, scope.code, hold.unchecked);
  // The recheck triggers of deferrable unique and exclusion constraints did not fire either.
  await checkDeferredUniques(c, scope.schema, scope.tables, scope.key, scope.keyType, scope.code);
  return { result, foreignKeys: 'once per tenant', check, held: hold.held };
}
