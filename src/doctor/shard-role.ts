import { poolKeyTypeMismatch } from '../placement/pool/key-type.js';
import type { Config, Shard } from '../config/types.js';
import type { Fleet } from '../fleet/fleet.js';
import { ADMIN_DATABASE } from '../placement/databases.js';
import { POOL_SCHEMA } from '../placement/naming.js';
import { rlsState, tableIsProtected } from '../placement/pool/rls.js';
import { findSideDoors } from '../placement/pool/side-doors.js';
import type { Check } from './types.js';

interface RoleAttributes {
  role: string;
  rolsuper: boolean;
  rolbypassrls: boolean;
  rolcreaterole: boolean;
  rolcreatedb: boolean;
  pool: boolean;
}

/**
 * What tenantctl's own shard role may do, in words an operator can act on: it needs CREATEDB and
 * CREATEROLE (or superuser); SUPERUSER or BYPASSRLS work but skip row-level security, which hides
 * bugs and is more than tenantctl needs.
 */
export async function shardRoleChecks(config: Config, fleet: Fleet, shard: Shard): Promise<Check[]> {
  const poolDb = shard.poolDatabase;
  const { rows } = await fleet.withClient(shard.name, ADMIN_DATABASE, (c) =>
    c.query<RoleAttributes>(
      `select rolname as role, rolsuper, rolbypassrls, rolcreaterole, rolcreatedb,
              exists (select 1 from pg_database where datname = $1) as pool
         from pg_roles where rolname = current_user`,
      [poolDb],
    ),
  );
  const r = rows[0];
  const can = r.rolsuper || (r.rolcreatedb && r.rolcreaterole);
  const attrs =
    [r.rolsuper && 'SUPERUSER', r.rolbypassrls && 'BYPASSRLS', r.rolcreatedb && 'CREATEDB', r.rolcreaterole && 'CREATEROLE']
      .filter(Boolean)
      .join(' ') || 'no CREATEDB, no CREATEROLE';
  let meaning: string;
  if (!can) meaning = `cannot create tenant databases and roles: grant it CREATEDB CREATEROLE (alter role ${r.role} createdb createrole)`;
  else if (r.rolsuper)
    meaning = 'works, but a superuser skips row-level security and may drop any role; LOGIN CREATEDB CREATEROLE is all tenantctl needs';
  else if (r.rolbypassrls) meaning = 'works, but BYPASSRLS is more than tenantctl needs (it sees pool rows as the owner of the tables)';
  else meaning = 'least privilege: tenantctl sees pool rows as the owner of the tables (or through its tenantctl_admin policy)';
  const checks: Check[] = [{ check: `shard role on ${shard.name}`, ok: can, detail: `${r.role}: ${attrs}; ${meaning}` }];
  if (r.pool) checks.push(await poolTablesCheck(config, fleet, shard));
  return checks;
}

/** Who owns the pool's tenant-scoped tables, and whether they are in tenantctl's managed RLS state. */
async function poolTablesCheck(config: Config, fleet: Fleet, shard: Shard): Promise<Check> {
  return fleet.withClient(shard.name, shard.poolDatabase, async (c) => {
    const states = await rlsState(c, POOL_SCHEMA, config);
    const check = `pool tables on ${shard.name}`;
    if (states.length === 0)
      return { check, ok: true, detail: `${shard.poolDatabase}: no tenant-scoped tables yet (made by the first migrate of a pool tenant)` };
    const owners = [...new Set(states.map((s) => s.owner))];
    const unprotected = states.filter((s) => !tableIsProtected(s, config) || s.widening.length > 0).map((s) => s.table);
    const doors = await findSideDoors(c, POOL_SCHEMA, config);
    const keyTypes = await poolKeyTypeMismatch(c, POOL_SCHEMA, config);
    if (keyTypes.length)
      return {
        check,
        ok: false,
        detail: `tenantKey.type is ${config.tenantKey.type}, but ${keyTypes.join(', ')}: put tenantKey.type back to the type the fleet was made with (a config edit does not retype the tables)`,
      };
    const problems = [
      unprotected.length && `not under tenantctl's row-level security: ${unprotected.join(', ')}`,
      doors.length && `open to the serving role past row-level security: ${doors.map((d) => `${d.kind} ${d.object}`).join(', ')}`,
    ].filter(Boolean);
    const owner = `owned by ${owners.join(', ')}${owners.includes(config.servingRole.name) ? ` (the serving role: those tables are FORCEd)` : ''}`;
    return {
      check,
      ok: problems.length === 0,
      detail: problems.length
        ? `${problems.join('; ')}; ${owner}; run tenantctl migrate up to repair`
        : `${states.length} tenant-scoped table(s) ${owner}, row-level security in place`,
    };
  });
}
