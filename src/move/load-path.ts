import { drivers } from '../placement/drivers.js';
import { foreignKeyPath, poolLoadRole, type ForeignKeyPath, type PoolLoadRole } from '../copy/pool-load-path.js';
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

/**
 * A row-by-row load into a pool fires the application's own triggers on the pool's tables for
 * every copied row (only `session_replication_role = replica` skips them, and only with the
 * grant). One that writes a copied table (an audit log) or changes the row (`updated_at`) makes
 * the copy differ from the source, and verification refuses it: the refusal then names them and
 * the way out, which the row counts alone do not say. Empty when the load was not row by row or
 * no such trigger is on the copied tables.
 */
export async function firedTriggersNote(deps: MoveDeps, plan: MovePlan, role: PoolLoadRole | undefined, tables: string[]): Promise<string> {
  if (!role || role.may) return '';
  const { rows } = await deps.fleet.withClient(plan.to.shard, plan.to.database, (c) =>
    c.query<{ t: string }>(
      `select format('%s on %s', t.tgname, cl.relname) as t from pg_trigger t join pg_class cl on cl.oid = t.tgrelid
         join pg_namespace n on n.oid = cl.relnamespace
        where n.nspname = $1 and cl.relname = any($2) and not t.tgisinternal and t.tgenabled in ('O', 'A') order by 1`,
      [plan.to.schema, tables],
    ),
  );
  if (!rows.length) return '';
  return `; the pool's own triggers fired for each copied row (${rows.map((r) => r.t).join(', ')}), as they do when role ${role.role} may not set session_replication_role: one that writes a copied table or changes the row makes the copy differ. As a superuser, GRANT SET ON PARAMETER session_replication_role TO ${role.role} to load without them, then run the move again`;
}
