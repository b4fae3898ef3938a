/**
 * Declared sharing in a pool schema. A table without the tenant key serves every tenant the same
 * rows, so it must be declared (`tenantKey.shared` in the config: read only by default, or
 * `write`); an undeclared one is a leak (every tenant reads everything in it) and fails the
 * migration that adds it, like any other side door. The serving role gets exactly what the
 * declaration says: read and write on tenant-scoped tables, SELECT (or read and write) on shared
 * ones, nothing on anything else.
 *
 * @example
 *   // tenants.config.yaml: tenantKey: { shared: [task_statuses, countries] }
 *   await assertDeclaredSharing(client, 'app', config); // RLS_UNSAFE naming attachment_blobs
 *
 * @module
 */
import type pg from 'pg';
import type { Config } from '../../config/types.js';
import { TenantctlError, UsageError } from '../../errors.js';
import { ident, qualified } from '../../sql.js';
import { scopedKeyColumn } from '../scoped-rule.js';

type Queryable = Pick<pg.ClientBase, 'query'>;
type SharingConfig = Pick<Config, 'tenantKey' | 'servingRole'>;

export interface SchemaTable {
  table: string;
  /** Carries its key column (tenantKey.column, or its override in tenantKey.tables). */
  keyed: boolean;
  /** How the config declares it shared, if it does. */
  shared: 'read' | 'write' | null;
}

/** Every table of `schema` (parents only; partitions follow their parent), keyed or not. */
export async function schemaTables(client: Queryable, schema: string, config: SharingConfig): Promise<SchemaTable[]> {
  const { rows } = await client.query<{ table: string; keyed: boolean }>(
    `select c.relname as table,
            exists (select 1 from pg_attribute a
                     where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
                       and a.attname = ${scopedKeyColumn('c', '$2', '$3')}) as keyed
       from pg_class c join pg_namespace n on n.oid = c.relnamespace
      where n.nspname = $1 and c.relkind in ('r', 'p') and not c.relispartition
      order by c.relname`,
    [schema, JSON.stringify(config.tenantKey.tables ?? {}), config.tenantKey.column],
  );
  const shared = config.tenantKey.shared ?? {};
  return rows.map((r) => ({ ...r, shared: shared[r.table] ?? null }));
}

export interface SharingProblem {
  table: string;
  kind: 'undeclared-keyless' | 'shared-with-key';
  message: string;
  fix: string;
}

/** What breaks the rule "every table carries the key or is declared shared", in words. */
export function sharingProblems(schema: string, tables: SchemaTable[], config: SharingConfig): SharingProblem[] {
  const column = config.tenantKey.column;
  const out: SharingProblem[] = [];
  for (const t of tables) {
    if (!t.keyed && t.shared === null) {
      out.push({
        table: t.table,
        kind: 'undeclared-keyless',
        message: `table ${schema}.${t.table} has no tenant-key column ${config.tenantKey.tables?.[t.table] ?? column}: in a pool every tenant would read and write all of its rows`,
        fix: `if the table keeps the tenant key under another name (a renamed column), map it in tenants.config.yaml (tenantKey.tables: { ${t.table}: <column> }); otherwise add the key to it in a migration (${column} ${config.tenantKey.type} not null), or, only for reference data every tenant may read, declare it shared (tenantKey.shared: [${t.table}])`,
      });
    } else if (t.keyed && t.shared !== null) {
      out.push({
        table: t.table,
        kind: 'shared-with-key',
        message: `table ${schema}.${t.table} is declared shared (tenantKey.shared) but carries the tenant key: its rows belong to tenants`,
        fix: `remove ${t.table} from tenantKey.shared in tenants.config.yaml (it is protected by row-level security like every keyed table)`,
      });
    }
  }
  return out;
}

/** Refuses (RLS_UNSAFE, every problem named) a pool schema that breaks declared sharing. */
export async function assertDeclaredSharing(client: Queryable, schema: string, config: SharingConfig): Promise<SchemaTable[]> {
  const tables = await schemaTables(client, schema, config);
  const problems = sharingProblems(schema, tables, config);
  if (problems.length > 0) {
    throw new TenantctlError('RLS_UNSAFE', problems.map((p) => p.message).join('; '), problems.map((p) => p.fix).join('; '));
  }
  return tables;
}

/**
 * The serving role's grants on the pool schema, exactly as declared: read and write on keyed
 * tables (row-level security filters them) and views, SELECT on shared read-only tables (write
 * taken back), read and write on shared `write` tables; nothing on materialized views and foreign
 * tables. Re-issued after every migration: new tables need them.
 */
export async function grantServingRole(client: Queryable, schema: string, tables: SchemaTable[], config: SharingConfig): Promise<void> {
  const role = ident(config.servingRole.name);
  const list = (ts: SchemaTable[]) => ts.map((t) => qualified(schema, t.table)).join(', ');
  await client.query(`grant usage on schema ${ident(schema)} to ${role}`);
  // Partitions take their root's grants: they can be read directly (and are protected on their own).
  const parts = await client.query<{ table: string; root: string }>(
    `select c.relname as table, r.relname as root
       from pg_class c join pg_namespace n on n.oid = c.relnamespace
       join pg_class r on r.oid = pg_partition_root(c.oid)
      where n.nspname = $1 and c.relispartition and c.relkind in ('r', 'p')`,
    [schema],
  );
  const byName = new Map(tables.map((t) => [t.table, t]));
  const all = [
    ...tables,
    ...parts.rows.flatMap((p) => {
      const root = byName.get(p.root);
      return root ? [{ ...root, table: p.table }] : [];
    }),
  ];
  const readWrite = all.filter((t) => t.keyed || t.shared === 'write');
  const readOnly = all.filter((t) => !t.keyed && t.shared === 'read');
  if (readWrite.length > 0) await client.query(`grant select, insert, update, delete on table ${list(readWrite)} to ${role}`);
  if (readOnly.length > 0) {
    await client.query(`grant select on table ${list(readOnly)} to ${role}`);
    await client.query(`revoke insert, update, delete, truncate on table ${list(readOnly)} from ${role}`);
  }
  // Views: side doors make them security_invoker (pool-side-doors.ts), so the policies of what
  // they read apply to the serving role. Materialized views and foreign tables get nothing.
  const views = await client.query<{ name: string }>(
    `select c.relname as name from pg_class c join pg_namespace n on n.oid = c.relnamespace
      where n.nspname = $1 and c.relkind = 'v' order by 1`,
    [schema],
  );
  if (views.rows.length > 0) {
    const names = views.rows.map((v) => qualified(schema, v.name)).join(', ');
    await client.query(`grant select, insert, update, delete on table ${names} to ${role}`);
  }
  await client.query(`grant usage on all sequences in schema ${ident(schema)} to ${role}`);
}

/** A shared read-only table the serving role may write (an old grant): the next repair takes it back. */
export async function writableReadOnlyTables(
  client: Queryable,
  schema: string,
  tables: SchemaTable[],
  config: SharingConfig,
): Promise<string[]> {
  const readOnly = tables.filter((t) => !t.keyed && t.shared === 'read').map((t) => t.table);
  if (readOnly.length === 0) return [];
  const { rows } = await client.query<{ table: string }>(
    `select c.relname as table from pg_class c join pg_namespace n on n.oid = c.relnamespace, pg_roles r
      where n.nspname = $1 and c.relname = any($2::text[]) and r.rolname = $3
        and has_table_privilege(r.oid, c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE')`,
    [schema, readOnly, config.servingRole.name],
  );
  return rows.map((r) => r.table);
}

/**
 * Before a backup or a move reads a placement: its undeclared keyless tables refuse the copy
 * (exit 2; their rows would be left behind without a word), and the declared shared tables it
 * holds are returned, so the manifest and the report can name them as not copied.
 */
export async function sharedTablesNotCopied(client: Queryable, schema: string, config: SharingConfig, what: string): Promise<string[]> {
  const tables = await schemaTables(client, schema, config);
  const undeclared = sharingProblems(schema, tables, config).filter((p) => p.kind === 'undeclared-keyless');
  if (undeclared.length > 0) {
    const names = undeclared.map((p) => p.table);
    throw new UsageError(
      'UNDECLARED_TABLE',
      `${what} refused: ${schema}.${names.join(`, ${schema}.`)} ha${names.length > 1 ? 've' : 's'} no tenant-key column ${config.tenantKey.column} and ${names.length > 1 ? 'are' : 'is'} not declared shared, so ${names.length > 1 ? 'their' : 'its'} rows would be left out; nothing was changed`,
      `add the key in a migration, or declare ${names.length > 1 ? 'them' : 'it'} shared reference data (tenantKey.shared: [${names.join(', ')}]), which backups and moves name and do not copy`,
    );
  }
  return tables.filter((t) => !t.keyed && t.shared !== null).map((t) => t.table);
}
