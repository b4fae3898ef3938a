import type pg from 'pg';

/**
 * Default-privileges entries (pg_default_acl) that name a schema which no longer exists. Any role
 * may `alter default privileges for role <itself> in schema <any>` without USAGE on the schema
 * and without a lock on it: left open while tenantctl drops a schema (a neighbour's delete, move
 * or restore), the entry commits pointing at nothing, and from then on `pg_dump` of the whole
 * database fails ("schema with OID … does not exist"). Only a superuser can remove it.
 */
export interface OrphanDefaultAcl {
  oid: number;
  role: string;
  namespace: number;
}

export async function orphanDefaultAcls(c: Pick<pg.ClientBase, 'query'>): Promise<OrphanDefaultAcl[]> {
  const { rows } = await c.query<OrphanDefaultAcl>(
    `select d.oid::int as oid, pg_get_userbyid(d.defaclrole)::text as role, d.defaclnamespace::int as namespace
       from pg_default_acl d
      where d.defaclnamespace <> 0 and not exists (select 1 from pg_namespace n where n.oid = d.defaclnamespace)
      order by d.oid`,
  );
  return rows;
}

/** The superuser's statements that remove them (the entry and its owner dependency), in one transaction. */
export function orphanDefaultAclFix(orphans: OrphanDefaultAcl[]): string {
  const oids = orphans.map((o) => o.oid).join(', ');
  return `-- as a superuser, in this database: begin; delete from pg_catalog.pg_shdepend where classid = 'pg_catalog.pg_default_acl'::regclass and objid in (${oids}); delete from pg_catalog.pg_default_acl where oid in (${oids}); commit;`;
}

/** "role tenant_x (entry 17860, schema oid 17859)" for each. */
export function orphanDefaultAclText(orphans: OrphanDefaultAcl[]): string {
  return orphans.map((o) => `role ${o.role} (entry ${o.oid}, schema oid ${o.namespace})`).join(', ');
}
