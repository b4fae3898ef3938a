import type pg from 'pg';
import type { ForeignKeyCheck } from './pool-load.js';

type Q = Pick<pg.ClientBase, 'query'>;

/** What decides a pool load's foreign-key path: whether the shard role may set session_replication_role. */
export interface PoolLoadRole {
  role: string;
  may: boolean;
  /** PostgreSQL before 15: the grant does not exist, only a superuser may. */
  old?: boolean;
}

/** The path a load took and why, in the words the move's report, its event, `move status` and `doctor` share. */
export interface ForeignKeyPath {
  path: ForeignKeyCheck;
  why: string;
}

/**
 * Whether the connected role may set session_replication_role (what loadIntoPool tries): a
 * superuser may; from PostgreSQL 15 on, a role granted `SET ON PARAMETER` may. One query.
 */
export async function poolLoadRole(c: Q): Promise<PoolLoadRole> {
  // has_parameter_privilege exists from PostgreSQL 15 on, as does the grant itself.
  const { rows } = await c.query<{ role: string; sup: boolean; num: number }>(
    `select current_user as role, (select rolsuper from pg_roles where rolname = current_user) as sup,
            current_setting('server_version_num')::int as num`,
  );
  const r = rows[0];
  if (r.sup) return { role: r.role, may: true };
  if (r.num < 150000) return { role: r.role, may: false, old: true };
  const p = await c.query<{ ok: boolean }>(`select has_parameter_privilege(current_user, 'session_replication_role', 'SET') as ok`);
  return { role: r.role, may: p.rows[0].ok };
}

/** Why a pool load goes (or went) the way it does, and how to get the faster way when there is one. */
export function poolLoadWhy(r: PoolLoadRole): string {
  if (r.may)
    return `role ${r.role} may set session_replication_role: rows go in without per-row triggers, then one check per foreign key over the tenant's rows, no table locks`;
  if (r.old)
    return `role ${r.role} may not set session_replication_role and PostgreSQL before 15 cannot grant it; move --fast-load checks once per table but locks the target pool's tables for the load`;
  return `role ${r.role} may not set session_replication_role; GRANT SET ON PARAMETER session_replication_role TO ${r.role} (as a superuser) to check once per tenant`;
}

/**
 * The path a move's load took (from its tables' checks) and why. `once per table` into a pool is
 * --fast-load; elsewhere it is a new placement nobody sees before the switch.
 */
export function foreignKeyPath(path: ForeignKeyCheck, o: { intoPool: boolean; role?: PoolLoadRole }): ForeignKeyPath {
  if (path === 'once per table') {
    return {
      path,
      why: o.intoPool
        ? "--fast-load: the target pool's foreign keys dropped for the load and added back after it, its tables locked meanwhile"
        : 'a new placement nobody sees before the switch: its foreign keys are added after the load',
    };
  }
  // The role as it is now; the path is what the load did (a grant given or taken mid-move changes neither).
  const role = o.role ?? { role: 'the shard role', may: path === 'once per tenant' };
  return { path, why: poolLoadWhy({ ...role, may: path === 'once per tenant' }) };
}

/**
 * A row-by-row load into a pool fires the application's own triggers on the pool's tables for
 * every copied row (only `session_replication_role = replica` skips them, and only with the
 * grant). One that writes a copied table (an audit log) or changes the row (`updated_at`) makes
 * the copy differ from its source, and verification refuses it: the refusal then names them and
 * the way out, which the row counts alone do not say. Empty when the role may load without them or
 * no such trigger is on the loaded tables.
 */
export async function poolTriggersNote(c: Q, schema: string, tables: string[], role: PoolLoadRole, what: string): Promise<string> {
  if (role.may) return '';
  const { rows } = await c.query<{ t: string }>(
    `select format('%s on %s', t.tgname, cl.relname) as t from pg_trigger t join pg_class cl on cl.oid = t.tgrelid
       join pg_namespace n on n.oid = cl.relnamespace
      where n.nspname = $1 and cl.relname = any($2) and not t.tgisinternal and t.tgenabled in ('O', 'A') order by 1`,
    [schema, tables],
  );
  if (!rows.length) return '';
  return `; the pool's own triggers fired for each copied row (${rows.map((r) => r.t).join(', ')}), as they do when role ${role.role} may not set session_replication_role: one that writes a copied table or changes the row makes the copy differ. As a superuser, GRANT SET ON PARAMETER session_replication_role TO ${role.role} to load without them, then run the ${what} again`;
}
