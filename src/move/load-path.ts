import { drivers } from '../placement/drivers.js';
import { foreignKeyPath, poolLoadRole, poolTriggersNote, type ForeignKeyPath, type PoolLoadRole } from '../copy/pool-load-path.js';
import type { MovePlan } from './plan.js';
import type { MoveDeps } from './types.js';
import type { TableCheck } from './verify-checks.js';

/**
 * Into shared tables: whether the target shard's role may set session_replication_role, asked
 * before the fence (one query) so that saying why the load checked its foreign keys as it did
 * costs the write block nothing. Undefined for a new placement (always once per table).
 */
export async function targetLoadRole(deps: MoveDeps, plan: MovePlan): Promise<PoolLoadRole | undefined> {
  if (drivers[plan.to.model].kind !== 'shared-tables') return undefined;
  return deps.fleet.withClient(plan.to.shard, plan.to.database, poolLoadRole);
}

/** The path the load took (its tables' checks say it) and why, for the report, the record and the event. */
export function movedForeignKeys(checks: TableCheck[], role: PoolLoadRole | undefined): ForeignKeyPath | undefined {
  const path = checks.find((c) => c.foreignKeys)?.foreignKeys;
  if (!path) return undefined;
  const said = foreignKeyPath(path, { intoPool: role !== undefined, role });
  // A split row-by-row load (pool-split.ts) committed in parts: worth knowing when reading the pool meanwhile.
  const parts = Math.max(1, ...checks.map((c) => c.parts ?? 1));
  if (parts < 2) return said;
  return { ...said, why: `${said.why}; the big tables loaded in ${parts} parts at once, each committed before the next table's load` };
}

/** The pool's own triggers that fired for each row of a row-by-row move, for a refusal by verification (poolTriggersNote). */
export async function firedTriggersNote(deps: MoveDeps, plan: MovePlan, role: PoolLoadRole | undefined, tables: string[]): Promise<string> {
  if (!role) return '';
  return deps.fleet.withClient(plan.to.shard, plan.to.database, (c) => poolTriggersNote(c, plan.to.schema, tables, role, 'move'));
}
