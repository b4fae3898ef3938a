import { sql } from 'kysely';
import type { CatalogDb } from '../catalog/open.js';
import { TENANT_LOCK_CLASSID } from './lock-ids.js';

/**
 * Of these slugs, the tenants whose lock (tenant-lock.ts) nobody holds right now. Every backup
 * holds its tenant's lock from start to publish, so what a backup left of an unlocked tenant
 * (a `.partial` folder, a `running` record) belongs to no live backup.
 */
export async function unlockedTenants(db: CatalogDb, slugs: string[]): Promise<Set<string>> {
  if (slugs.length === 0) return new Set();
  const r = await sql<{ slug: string }>`
    select s.slug from unnest(${slugs}::text[]) as s(slug)
     where not exists (
       select 1 from pg_locks l
        where l.locktype = 'advisory' and l.granted and l.objsubid = 2
          and l.database = (select oid from pg_database where datname = current_database())
          and l.classid = ${TENANT_LOCK_CLASSID}::int::oid and l.objid = hashtext(s.slug)::oid)`.execute(db);
  return new Set(r.rows.map((x) => x.slug));
}

/** The tenant's slug of a storage partial path `<slug>/.<id>.partial`. */
export function slugOfPartial(p: string): string {
  return p.slice(0, p.indexOf('/'));
}
