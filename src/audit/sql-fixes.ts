import type { Config } from '../config/types.js';
import { policyExpression, POLICY_NAME } from '../placement/pool/rls.js';
import { ident, qualified } from '../sql.js';

/** The permissive policy that lets tenantctl's own role see every row of a pool table. */
export const ADMIN_POLICY = 'tenantctl_admin';

/**
 * The SQL that puts one pool table (or partition) into the state tenantctl designs: RLS enabled,
 * forced only when a role other than the shard role owns it (the owner is exempt otherwise, which
 * is what tenantctl's own work relies on), `tenantctl_isolation` for everyone and
 * `tenantctl_admin` for the shard role.
 */
export function protectTableSql(
  schema: string,
  table: string,
  column: string,
  owner: string,
  shardRole: string,
  config: Pick<Config, 'tenantKey' | 'rls'>,
): string {
  const t = qualified(schema, table);
  const expr = policyExpression(column, config);
  return [
    `alter table ${t} enable row level security;`,
    ...(owner !== shardRole ? [`alter table ${t} force row level security;`] : []),
    `drop policy if exists ${ident(POLICY_NAME)} on ${t};`,
    `create policy ${ident(POLICY_NAME)} on ${t} for all to public using (${expr}) with check (${expr});`,
    `drop policy if exists ${ident(ADMIN_POLICY)} on ${t};`,
    `create policy ${ident(ADMIN_POLICY)} on ${t} for all to ${ident(shardRole)} using (true) with check (true);`,
  ].join('\n');
}

/** `{a,"b c"}` as PostgreSQL prints name[] → ['a', 'b c']. */
export function parsePgArray(text: string | string[] | null): string[] {
  if (text === null) return [];
  if (Array.isArray(text)) return text;
  const inner = text.replace(/^\{|\}$/g, '');
  if (!inner) return [];
  const out: string[] = [];
  const re = /"((?:[^"\\]|\\.)*)"|([^,]+)/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(inner))) out.push(m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : m[2]);
  return out;
}
