import type pg from 'pg';
import type { Config } from '../config/types.js';
import type { TenantRow } from '../catalog/tables.js';
import { UsageError } from '../errors.js';

type Queryable = Pick<pg.ClientBase, 'query'>;

/**
 * Schemas that are never a tenant's tables: the system's, tenantctl's own (tracking, fences,
 * capture, a restore's staging schema) and the schema tenants' own `t_<slug>` beside this one.
 */
const NOT_TENANT_TABLES = `n.nspname not in ('pg_catalog', 'information_schema', 'tenantctl')
  and n.nspname not like 'pg\\_%' and n.nspname not like 'tenantctl\\_%' and n.nspname not like 't\\_%'`;

/**
 * The tables a copy of one placement (a move, a backup, a restore --at) would leave behind:
 * tenantctl copies the placement's one schema. In a database tenant's own database every other
 * user table is the tenant's. In the databases tenants share (the pool's, the schema tenants'),
 * a table that carries the tenant key and that tenants' applications may use (the serving role,
 * a tenant role or PUBLIC holds a privilege on it) holds their rows; a keyless one is reference
 * data each target has its own copy of, and one no tenant may touch is the operator's own.
 * Tables of an extension come with the extension. `schema.table`, sorted.
 */
export async function tablesLeftBehind(
  c: Queryable,
  schema: string,
  config: Pick<Config, 'tenantKey' | 'servingRole'>,
  model: TenantRow['model'],
): Promise<string[]> {
  const { rows } = await c.query<{ name: string }>(
    `select n.nspname || '.' || c.relname as name
       from pg_class c join pg_namespace n on n.oid = c.relnamespace
      where c.relkind in ('r', 'p') and not c.relispartition and n.nspname <> $1 and ${NOT_TENANT_TABLES}
        and not exists (select 1 from pg_depend d
                         where d.classid = 'pg_class'::regclass and d.objid = c.oid and d.deptype = 'e')
        and ($2 or (exists (select 1 from pg_attribute a
                             where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped and a.attname = $3)
                    and exists (select 1 from pg_roles r
                                 where (r.rolname = $4 or r.rolname like 'tenant\\_%')
                                   and has_table_privilege(r.oid, c.oid, 'SELECT, INSERT, UPDATE, DELETE'))))
      order by 1`,
    [schema, model === 'database', config.tenantKey.column, config.servingRole.name],
  );
  return rows.map((r) => r.name);
}

/**
 * A database tenant's copy (move, backup, restore --at) that would leave some of its rows behind
 * is refused (exit 2, nothing changed): `move complete` drops the source database, and with it
 * every table outside the schema the move copied. In the databases tenants share such a table
 * outlives a move or a delete where it is (an audit log its triggers write, say), so nothing is
 * lost by the copy: `audit` names it (placement.table-outside-schema) and the copy goes on.
 */
export async function refuseTablesLeftBehind(
  c: Queryable,
  schema: string,
  config: Pick<Config, 'tenantKey' | 'servingRole'>,
  model: TenantRow['model'],
  what: string,
): Promise<void> {
  if (model !== 'database') return;
  const names = await tablesLeftBehind(c, schema, config, model);
  if (names.length === 0) return;
  const shown = names.length > 5 ? `${names.slice(0, 5).join(', ')} and ${names.length - 5} more` : names.join(', ');
  throw new UsageError(
    'TABLE_OUTSIDE_SCHEMA',
    `${what} refused: ${shown} ${names.length > 1 ? 'are' : 'is'} in the tenant's own database, outside its schema ${schema}; tenantctl copies only ${schema}, so ${names.length > 1 ? 'their' : 'its'} rows would be left behind (and dropped with the source database); nothing was changed`,
    `keep a tenant's tables in its schema (a migration's unqualified names go there): a migration can move one, e.g. alter table ${names[0]} set schema ${schema}`,
  );
}
