import type { Config } from '../config/types.js';
import type { ShardClient } from '../fleet/shard-connections.js';
import { ident, qualified } from '../sql.js';
import type { OwnedSchema } from './acl-checks.js';
import { finding } from './registry.js';
import type { Finding } from './types.js';

/**
 * A schema or database tenant's copy of a read-only shared table (`tenantKey.shared`) that someone
 * other than its owner may write. tenantctl takes those writes back at create and when a
 * migration names the table; a tenant made before that rule, or a grant made by hand, is only
 * seen here. Such a write is lost by the next move or restore (they do not copy shared tables) and
 * a row referencing it makes the tenant's backup unrestorable. One query for every schema of the
 * unit; `--fix` revokes what create revokes (shared-read-only.ts), from the grantees found.
 */
export async function placementSharedWritable(
  c: ShardClient,
  at: { shard: string; database: string },
  owned: OwnedSchema[],
  config: Pick<Config, 'tenantKey'>,
): Promise<Finding[]> {
  const readOnly = Object.entries(config.tenantKey.shared ?? {})
    .filter(([, mode]) => mode === 'read')
    .map(([name]) => name);
  if (owned.length === 0 || readOnly.length === 0) return [];
  const { rows } = await c.query<{ schema: string; table: string; grantees: string[] }>(
    `select w.schema, w.table, array_agg(distinct w.grantee order by w.grantee) as grantees
       from (select n.nspname as schema, c.relname as table,
                    case when a.grantee = 0 then 'PUBLIC' else pg_get_userbyid(a.grantee)::text end as grantee
               from pg_class c join pg_namespace n on n.oid = c.relnamespace, aclexplode(c.relacl) a
              where n.nspname = any($1::text[]) and c.relname = any($2::text[])
                and a.grantee <> c.relowner and a.privilege_type in ('INSERT', 'UPDATE', 'DELETE', 'TRUNCATE')) w
      group by 1, 2
      order by 1, 2`,
    [owned.map((o) => o.schema), readOnly],
  );
  const bySchema = new Map(owned.map((o) => [o.schema, o]));
  return rows.map((r) => {
    const o = bySchema.get(r.schema)!;
    return finding('placement.shared-writable', {
      ...at,
      tenant: o.slug,
      object: `${r.schema}.${r.table}`,
      message: `${r.schema}.${r.table} is declared read-only shared data (tenantKey.shared) but ${r.grantees.join(', ')} may write it: what tenant ${o.slug} writes there is lost by its next move or restore, and a row of its own that references it makes its backup unrestorable`,
      fix: `revoke insert, update, delete, truncate on ${qualified(r.schema, r.table)} from ${r.grantees.map((g) => (g === 'PUBLIC' ? 'public' : ident(g))).join(', ')};`,
    });
  });
}
