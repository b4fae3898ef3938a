import type { Shard } from '../config/types.js';
import type { CatalogDb } from '../catalog/open.js';
import { sql } from 'kysely';
import { closeToPublicSql, PUBLIC_REACH_SQL } from '../catalog/closed.js';
import type { Fleet } from '../fleet/fleet.js';
import { ADMIN_DATABASE, MAINTENANCE_DATABASES } from '../placement/databases.js';
import { ident } from '../sql.js';
import { CLOSED_FUNCTIONS, closeFunctionsSql, publicFunctionsSql } from '../placement/closed-functions.js';
import type { Check } from './types.js';

/**
 * Databases tenants must not reach. PUBLIC holds CONNECT and TEMP on a new database: a tenant
 * role connected to the catalog could hold tenantctl's locks there and read its activity, and in
 * the maintenance databases it could own large objects that block its deletion. `openCatalog`
 * closes a catalog its role owns; `dev up` closes the maintenance databases; on other clusters
 * the operator runs the statements named here.
 */

/** The catalog database: closed to PUBLIC, or the statement its owner must run. */
export async function catalogReachCheck(db: CatalogDb): Promise<Check> {
  const { rows } = await sql<{ open: boolean; d: string; owner: string; me: string }>`
    select ${sql.raw(PUBLIC_REACH_SQL)} as open, current_database() as d, current_user as me,
           (select pg_get_userbyid(datdba) from pg_database where datname = current_database()) as owner`.execute(db);
  const r = rows[0];
  return {
    check: 'catalog access',
    ok: !r.open,
    detail: r.open
      ? `PUBLIC can connect to the catalog database ${r.d}: tenant roles can take tenantctl's locks there; as ${r.owner} (its owner) or a superuser run: ${closeToPublicSql(r.d)}; grant connect, temporary on database ${ident(r.d)} to ${ident(r.me)}`
      : `only ${r.me === r.owner ? `${r.me} (its owner)` : `${r.owner} (its owner) and the roles granted it`} can connect to ${r.d}`,
  };
}

/** `postgres` and `template1` on a shard: closed to PUBLIC, or the statements to run as a superuser. */
export async function maintenanceReachCheck(fleet: Fleet, shard: Shard): Promise<Check> {
  const { open, me } = await fleet.withClient(shard.name, ADMIN_DATABASE, async (c) => {
    const { rows } = await c.query<{ open: string[]; me: string }>(
      `select current_user as me, array(
         select datname::text from pg_database
          where datname = any($1::text[])
            and (has_database_privilege('public', oid, 'CONNECT') or has_database_privilege('public', oid, 'TEMPORARY'))
          order by datname) as open`,
      [MAINTENANCE_DATABASES],
    );
    return rows[0];
  });
  const fix = open
    .map(
      (d) =>
        `grant connect, temporary on database ${ident(d)} to ${ident(me)}; revoke connect, temporary on database ${ident(d)} from public`,
    )
    .join('; ');
  return {
    check: `maintenance databases on ${shard.name}`,
    ok: open.length === 0,
    detail: open.length
      ? `PUBLIC can connect to ${open.join(' and ')}: tenant roles do not need them and can own objects there that block their deletion; as a superuser run: ${fix}`
      : `${MAINTENANCE_DATABASES.join(' and ')} are closed to PUBLIC (tenantctl's role is granted CONNECT)`,
  };
}

/**
 * Whether PUBLIC may run functions tenants need none of (closed-functions.ts: advisory locks,
 * making large objects), read in the shard's `postgres` database. Not template1, though every new
 * database copies its privileges: a session there, even a moment's, makes a concurrent CREATE
 * DATABASE (a tenant create) fail, "source database template1 is being accessed by other users";
 * the fix names it. A warning, not a failure: it is PostgreSQL's default, and taking it away is a
 * superuser's decision (an application that uses them then needs a grant to its own role).
 */
export async function closedFunctionsChecks(fleet: Fleet, shard: Shard): Promise<Check[]> {
  return fleet.withClient(shard.name, ADMIN_DATABASE, async (c) => {
    const me = (await c.query<{ me: string }>('select current_user as me')).rows[0].me;
    const out: Check[] = [];
    for (const group of CLOSED_FUNCTIONS) {
      const { open } = (await c.query<{ open: string[] }>(publicFunctionsSql(group))).rows[0];
      out.push({
        check: `${group.what} on ${shard.name}`,
        ok: true,
        warning: open.length > 0,
        detail: open.length
          ? `PUBLIC may run ${open.join(', ')} (read in ${ADMIN_DATABASE}): ${group.harm}; as a superuser, in template1 and in each database of ${shard.name} (function privileges are per database), run: ${closeFunctionsSql(group, me)} (an application that needs them then needs that grant to its own role)`
          : `only roles granted them may run the ${group.what} functions (read in ${ADMIN_DATABASE}; template1 and each database have their own privileges)`,
      });
    }
    return out;
  });
}
