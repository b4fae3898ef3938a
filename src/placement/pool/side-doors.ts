/**
 * Side doors of a pool database: objects through which the serving role could read tenant rows
 * past row-level security, because they run or were filled with someone else's rights.
 *
 * - a view reading tenant tables runs as its owner unless it is `security_invoker` (PG 15+), and
 *   its owner (tenantctl's role) sees every row: it is made security_invoker;
 * - a materialized view holds whatever its owner saw when refreshed (every tenant), and a foreign
 *   table is not under our policies: the serving role's access is revoked;
 * - a SECURITY DEFINER function runs with its owner's rights: EXECUTE is revoked from PUBLIC and
 *   the serving role.
 *
 * Closed after every pool migration, in its transaction. What cannot be closed (an object owned
 * by a role tenantctl cannot act for, access through role membership) fails the migration.
 *
 * @module
 */
import type pg from 'pg';
import type { Config } from '../../config/types.js';
import { TenantctlError } from '../../errors.js';
import { ident, qualified } from '../../sql.js';
import { scopedKeyColumn } from '../scoped-rule.js';
import { OWN_DEFINER_FUNCTION_SQL } from './fence-schema.js';

type Queryable = Pick<pg.ClientBase, 'query'>;
type DoorConfig = Pick<Config, 'tenantKey' | 'servingRole'>;

export type SideDoorKind = 'view' | 'materialized view' | 'foreign table' | 'security definer function';

export interface SideDoor {
  kind: SideDoorKind;
  /** schema.name, or a function's signature as PostgreSQL prints it (already quoted). */
  object: string;
  /** The statement that closes it. */
  fix: string;
  /** What the fix did, for the report. */
  closed: string;
}

const USER_SCHEMAS = `n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg\\_%'`;

/**
 * Open side doors of the database `client` is connected to, for the pool target in `schema`.
 *
 * @example
 *   await findSideDoors(client, 'app', config)
 *   // [{ kind: 'view', object: 'app.campaign_stats', fix: 'alter view "app"."campaign_stats" set (security_invoker = true)', ... }]
 */
export async function findSideDoors(client: Queryable, schema: string, config: DoorConfig): Promise<SideDoor[]> {
  const serving = config.servingRole.name;
  const { rows } = await client.query<{ kind: string; schema: string; name: string; invoker: boolean; can_use: boolean }>(
    `with recursive tenant as (
       select c.oid from pg_class c
         join pg_namespace n on n.oid = c.relnamespace
         join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
        where n.nspname = $1 and c.relkind in ('r', 'p') and a.attname = ${scopedKeyColumn('c', '$2', '$3')}
     ), edges as (
       select distinct r.ev_class as reader, d.refobjid as source
         from pg_rewrite r
         join pg_depend d on d.classid = 'pg_rewrite'::regclass and d.objid = r.oid and d.refclassid = 'pg_class'::regclass
        where d.refobjid <> r.ev_class
     ), readers(oid) as (
       select reader from edges where source in (select oid from tenant)
       union
       select e.reader from edges e join readers x on e.source = x.oid
     ), serving as (select oid from pg_roles where rolname = $4)
     select c.relkind::text as kind, n.nspname as schema, c.relname as name,
            coalesce((select lower(o.option_value) in ('true', 'on', 'yes', '1')
                        from pg_options_to_table(c.reloptions) o where o.option_name = 'security_invoker'), false) as invoker,
            exists (select 1 from serving) and has_table_privilege($4, c.oid, 'select, insert, update, delete') as can_use
       from pg_class c join pg_namespace n on n.oid = c.relnamespace
      where (c.oid in (select oid from readers) and c.relkind in ('v', 'm'))
         or (c.relkind = 'f' and ${USER_SCHEMAS})
      order by 2, 3`,
    [schema, JSON.stringify(config.tenantKey.tables ?? {}), config.tenantKey.column, serving],
  );
  const doors: SideDoor[] = [];
  for (const r of rows) {
    const name = `${r.schema}.${r.name}`;
    const q = qualified(r.schema, r.name);
    if (r.kind === 'v' && !r.invoker) {
      doors.push({
        kind: 'view',
        object: name,
        fix: `alter view ${q} set (security_invoker = true)`,
        closed: `view ${name} now runs with the caller's rights (security_invoker): as its owner it showed every tenant's rows`,
      });
    } else if ((r.kind === 'm' || r.kind === 'f') && r.can_use) {
      const kind = r.kind === 'm' ? 'materialized view' : 'foreign table';
      doors.push({
        kind,
        object: name,
        fix: `revoke all on ${q} from public, ${ident(serving)}`,
        closed: `revoked ${serving}'s access to ${kind} ${name}: ${r.kind === 'm' ? "it holds every tenant's rows" : 'row-level security does not reach it'}`,
      });
    }
  }
  const fns = await client.query<{ signature: string }>(
    // Schema-qualified whatever the search_path, with PostgreSQL's own quoting of names and types.
    `select quote_ident(n.nspname) || '.' || quote_ident(p.proname) || '(' || pg_get_function_identity_arguments(p.oid) || ')' as signature
       from pg_proc p join pg_namespace n on n.oid = p.pronamespace
      where p.prosecdef and ${USER_SCHEMAS} and not ${OWN_DEFINER_FUNCTION_SQL}
        and not exists (select 1 from pg_depend d where d.classid = 'pg_proc'::regclass and d.objid = p.oid and d.deptype = 'e')
        and exists (select 1 from pg_roles where rolname = $1)
        and has_function_privilege($1, p.oid, 'execute')
      order by 1`,
    [serving],
  );
  for (const f of fns.rows) {
    doors.push({
      kind: 'security definer function',
      object: f.signature,
      fix: `revoke execute on function ${f.signature} from public, ${ident(serving)}`,
      closed: `revoked EXECUTE on SECURITY DEFINER function ${f.signature} from PUBLIC and ${serving}: it runs with its owner's rights, which see every tenant's rows`,
    });
  }
  return doors;
}

/**
 * Close every side door, then look again: what is still open (access through a role the serving
 * role is a member of, an object tenantctl may not alter) throws RLS_UNSAFE. Returns what was
 * done, in words. Run inside the migration's transaction.
 */
export async function closeSideDoors(client: Queryable, schema: string, config: DoorConfig): Promise<string[]> {
  const doors = await findSideDoors(client, schema, config);
  if (doors.length === 0) return [];
  for (const d of doors) {
    try {
      await client.query(d.fix);
    } catch (err) {
      if ((err as { code?: string }).code !== '42501') throw err;
      throw new TenantctlError(
        'RLS_UNSAFE',
        `${d.kind} ${d.object} lets the serving role ${config.servingRole.name} read every tenant's rows, and tenantctl's role may not change it (${(err as Error).message})`,
        `make tenantctl's role its owner, or run yourself: ${d.fix}`,
      );
    }
  }
  const left = await findSideDoors(client, schema, config);
  if (left.length > 0) {
    throw new TenantctlError(
      'RLS_UNSAFE',
      `still open after revoking: ${left.map((d) => `${d.kind} ${d.object}`).join(', ')}; the serving role ${config.servingRole.name} reaches it through another grant (a role it is a member of)`,
      'revoke that grant in a migration, then run migrate up again',
    );
  }
  return doors.map((d) => d.closed);
}
