import type pg from 'pg';
import { LIMIT_SETTINGS } from '../limits/settings.js';

/**
 * Bytes each role keeps in role settings tenantctl does not set (`alter role current_user set
 * application_name = …`, in any database): any role may store hundreds of MB there, outside every
 * table, so `usage` counts them against the tenant's storage. The tier's limits and the role's
 * search_path (tenantctl's) count nothing. Roles with none are absent.
 */
export async function roleSettingBytes(c: Pick<pg.ClientBase, 'query'>, roles: string[]): Promise<Map<string, number>> {
  if (roles.length === 0) return new Map();
  const { rows } = await c.query<{ role: string; bytes: string }>(
    `select r.rolname as role, sum(octet_length(cfg))::bigint as bytes
       from pg_db_role_setting s join pg_roles r on r.oid = s.setrole, unnest(s.setconfig) cfg
      where r.rolname = any($1::text[]) and split_part(cfg, '=', 1) <> all($2::text[])
      group by 1`,
    [roles, [...LIMIT_SETTINGS, 'search_path']],
  );
  return new Map(rows.map((r) => [r.role, Number(r.bytes)]));
}
