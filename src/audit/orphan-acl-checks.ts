import type { ShardClient } from '../fleet/shard-connections.js';
import { orphanDefaultAclFix, orphanDefaultAcls, orphanDefaultAclText } from '../placement/orphan-default-acls.js';
import { finding } from './registry.js';
import type { Finding } from './types.js';

/**
 * Default-privileges entries naming a dropped schema (src/placement/orphan-default-acls.ts): a
 * tenant's session can leave one behind while a neighbour's schema is dropped, and pg_dump of the
 * database fails from then on (backups go on without their pg_dump file and say so). Only a
 * superuser can remove it: the fix is named, not applied.
 */
export async function orphanDefaultPrivileges(
  c: ShardClient,
  at: { shard: string; database: string },
  roleToSlug: Map<string, string>,
): Promise<Finding[]> {
  const orphans = await orphanDefaultAcls(c);
  if (orphans.length === 0) return [];
  const tenants = [...new Set(orphans.map((o) => roleToSlug.get(o.role)).filter((s): s is string => Boolean(s)))];
  return [
    finding('database.orphan-default-privileges', {
      ...at,
      tenant: tenants.length === 1 ? tenants[0] : null,
      object: `default privileges in ${at.database}`,
      message: `${orphanDefaultAclText(orphans)} in ${at.database} hold${orphans.length === 1 ? 's' : ''} default privileges for a schema that no longer exists (made while a schema was dropped${tenants.length ? `; by the session of ${tenants.map((t) => `tenant ${t}`).join(', ')}` : ''}): pg_dump of ${at.database} fails, so its tenants' backups carry no pg_dump file`,
      fix: orphanDefaultAclFix(orphans),
    }),
  ];
}
