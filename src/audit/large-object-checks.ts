import type { ShardClient } from '../fleet/shard-connections.js';
import { ident } from '../sql.js';
import type { OwnedSchema } from './acl-checks.js';
import { finding } from './registry.js';
import type { Finding } from './types.js';

/**
 * Large objects in a database schema tenants share, readable or writable by someone other than
 * their owner: PUBLIC (every tenant of the database) or another tenant's role. Large objects have
 * no schema, so the schema grants the other checks read do not cover them; any role with a login
 * may make one (`lo_from_bytea`) and grant it to a neighbour, which both opens its data to that
 * neighbour and (before tenantctl revoked such grants itself) kept the neighbour from being
 * deleted. Only the owner (or a superuser) can take such a grant back, so the fix is named, not
 * applied. One query per database (`pg_largeobject_metadata` is readable by every role).
 */
export async function sharedLargeObjects(
  c: ShardClient,
  at: { shard: string; database: string },
  owned: OwnedSchema[],
): Promise<Finding[]> {
  const { rows } = await c.query<{ lo: string; owner: string; grantees: string[]; privs: string[] }>(
    `select g.lo, g.owner, array_agg(distinct g.grantee order by g.grantee) as grantees, array_agg(distinct g.priv order by g.priv) as privs
       from (select l.oid::text as lo, pg_get_userbyid(l.lomowner)::text as owner, a.privilege_type::text as priv,
                    case when a.grantee = 0 then 'PUBLIC' else pg_get_userbyid(a.grantee)::text end as grantee
               from pg_largeobject_metadata l, aclexplode(l.lomacl) a
              where a.grantee <> l.lomowner and a.grantee <> (select oid from pg_roles where rolname = current_user)) g
      group by 1, 2
      order by 1`,
  );
  const slugOf = new Map(owned.map((o) => [o.role, o.slug]));
  const out: Finding[] = [];
  for (const r of rows) {
    // Grants that reach a tenant: PUBLIC, or a tenant role other than the owner's.
    const reach = r.grantees.filter((g) => g === 'PUBLIC' || (slugOf.has(g) && g !== r.owner));
    if (reach.length === 0) continue;
    const owner = slugOf.get(r.owner);
    const readers = reach.map((g) => (g === 'PUBLIC' ? 'PUBLIC (every tenant of the database)' : `tenant ${slugOf.get(g)} (${g})`));
    out.push(
      finding('schema.large-object-shared', {
        ...at,
        tenant: owner ?? null,
        object: `large object ${r.lo}`,
        message: `large object ${r.lo} in ${at.database}, owned by ${owner ? `tenant ${owner} (${r.owner})` : r.owner}, is granted ${r.privs.join(', ')} to ${readers.join(', ')}: another tenant can read${r.privs.includes('UPDATE') ? ' and change' : ''} it by its oid`,
        fix: `-- as ${r.owner} (or a superuser): revoke all on large object ${Number(r.lo)} from ${reach.map((g) => (g === 'PUBLIC' ? 'public' : ident(g))).join(', ')};`,
      }),
    );
  }
  return out;
}
