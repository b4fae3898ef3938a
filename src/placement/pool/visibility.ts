import type pg from 'pg';
import type { Config } from '../../config/types.js';
import { TenantctlError } from '../../errors.js';
import { rlsState } from './rls.js';

type Mode = 'read' | 'load';

/**
 * Before copying a pool tenant: tenantctl's role must see every row (reading) and must not be
 * subject to row-level security at all (loading: PostgreSQL refuses COPY FROM to a role RLS
 * applies to). In the managed state tenantctl owns the pool tables without FORCE, so neither
 * applies. A table owned by another role has FORCE (see rls.ts): reading still sees every row
 * through the `tenantctl_admin` policy, but loading is refused here, clearly, rather than
 * routed around: the fix is to give tenantctl's role the tables. Returns the role the copy
 * runs as and why RLS does not filter it, for the event log.
 */
export async function assertPoolCopyAllowed(
  client: Pick<pg.ClientBase, 'query'>,
  schema: string,
  config: Pick<Config, 'tenantKey' | 'rls' | 'servingRole'>,
  mode: Mode,
): Promise<string> {
  const states = (await rlsState(client, schema, config)).filter((s) => !s.partition);
  let admin = '';
  for (const s of states) {
    admin = s.admin;
    const applies = s.enabled && (s.owner !== s.admin || s.forced);
    if (!applies) continue;
    if (mode === 'load') {
      throw new TenantctlError(
        'RLS_UNSAFE',
        `${schema}.${s.table} is owned by ${s.owner}${s.forced ? ' with FORCE ROW LEVEL SECURITY' : ''}, so row-level security applies to tenantctl's role ${s.admin} and PostgreSQL refuses COPY FROM into it; nothing was loaded`,
        `make ${s.admin} the owner of the pool tables (alter table ${schema}.${s.table} owner to ${s.admin}), then run tenantctl migrate up to repair the policies`,
      );
    }
    const seesAll = s.adminPolicy === 'true' && (s.adminRoles ?? []).includes(s.admin);
    if (!seesAll) {
      throw new TenantctlError(
        'RLS_UNSAFE',
        `row-level security on ${schema}.${s.table} would filter what tenantctl's role ${s.admin} reads (no tenantctl_admin policy for it); the copy would be incomplete`,
        "run tenantctl migrate up to repair the pool target's policies, then back up again",
      );
    }
  }
  return admin ? `${admin} (owner of the pool tables, not subject to row-level security)` : 'tenantctl';
}
