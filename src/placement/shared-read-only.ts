import type { Config } from '../config/types.js';
import type { ShardClient } from '../fleet/shard-connections.js';
import { literal } from '../sql.js';
import { currentUser } from './own-role.js';
import { grantSchemaToRole } from './roles.js';

/**
 * In a schema or database placement, a table declared shared reference data (`tenantKey.shared`,
 * read only unless `{ name: write }`) is the tenant's own copy, made by the migrations, and
 * backups and moves do not copy it (the target's migrations make its own). The tenant role's
 * default grants would let it write that copy: its changes would then be lost by every move and
 * restore, and rows of its own tables that reference them would fail the restore, while the
 * backup verified "intact". So, as the pool's serving role, the tenant role only reads it: this
 * statement revokes every write privilege on those tables from everyone but their owner. Empty
 * when nothing is declared read only.
 *
 * @example
 *   await c.query(readOnlySharedSql('t_acme', config)); // after the grants
 */
export function readOnlySharedSql(schema: string, config: Pick<Config, 'tenantKey'>): string {
  const tables = Object.entries(config.tenantKey.shared ?? {})
    .filter(([, mode]) => mode === 'read')
    .map(([name]) => name);
  if (tables.length === 0) return '';
  return `do $tenantctl_shared$ declare r record; begin
  for r in select distinct format('revoke insert, update, delete, truncate on %I.%I from %s', n.nspname, c.relname,
                                  case when a.grantee = 0 then 'public' else quote_ident(g.rolname) end) as stmt
             from pg_class c join pg_namespace n on n.oid = c.relnamespace, aclexplode(c.relacl) a left join pg_roles g on g.oid = a.grantee
            where n.nspname = ${literal(schema)} and c.relname = any(array[${tables.map(literal).join(', ')}]::text[])
              and a.grantee <> c.relowner and a.privilege_type in ('INSERT', 'UPDATE', 'DELETE', 'TRUNCATE')
  loop execute r.stmt; end loop;
end $tenantctl_shared$`;
}

/** Whether a migration's SQL may make one of the read-only shared tables (its name appears as a word). */
export function mentionsReadOnlyShared(sql: string, config: Pick<Config, 'tenantKey'>): boolean {
  // Table names in the config are lowercase identifiers ([a-z0-9_]): nothing to escape.
  const low = sql.toLowerCase();
  return Object.entries(config.tenantKey.shared ?? {}).some(
    ([name, mode]) => mode === 'read' && new RegExp(`(^|[^a-z0-9_$])${name}($|[^a-z0-9_$])`).test(low),
  );
}

/**
 * A schema or database placement's grants to its tenant role: its tables and sequences, with the
 * read-only shared tables taken back to reading (shared-read-only.ts).
 */
export async function grantPlacementToRole(c: ShardClient, config: Pick<Config, 'tenantKey'>, schema: string, role: string): Promise<void> {
  await grantSchemaToRole(c, schema, role, await currentUser(c));
  const readOnly = readOnlySharedSql(schema, config);
  if (readOnly) await c.query(readOnly);
}
