import type { ShardClient } from '../fleet/shard-connections.js';
import { ident } from '../sql.js';
import type { OwnedSchema } from './acl-checks.js';
import { finding } from './registry.js';
import type { Finding } from './types.js';

/**
 * Extensions that live in one tenant's schema of the database schema tenants share. A migration's
 * `create extension if not exists citext` installs it in the first tenant migrated (the first
 * schema on its search_path); for every later tenant it exists already, and its types and
 * functions are not on their path: found by an operator, every later `tenant create`, `restore
 * --replace` and move into that database failed, "type citext does not exist", with a hint to run
 * it again. (`tenant delete` of the first tenant keeps the extension: schema/driver.ts.) Fixed by
 * moving it to public as its owner or a superuser, and naming its types there in migrations.
 */
export async function extensionsInTenantSchemas(
  c: ShardClient,
  at: { shard: string; database: string },
  owned: OwnedSchema[],
): Promise<Finding[]> {
  if (owned.length === 0) return [];
  const { rows } = await c.query<{ ext: string; schema: string }>(
    `select e.extname as ext, n.nspname as schema
       from pg_extension e join pg_namespace n on n.oid = e.extnamespace
      where n.nspname = any($1::text[])
      order by 1`,
    [owned.map((o) => o.schema)],
  );
  return rows.map((r) => {
    const slug = owned.find((o) => o.schema === r.schema)?.slug ?? null;
    return finding('schema.extension-in-tenant-schema', {
      ...at,
      tenant: slug,
      object: `extension ${r.ext}`,
      message: `extension ${r.ext} lives in schema ${r.schema} (tenant ${slug}) of ${at.database}: the other tenants there do not see its types and functions, so a migration that uses them fails for every tenant created, restored or moved in after (e.g. "type ${r.ext} does not exist")`,
      // A trusted extension made by the shard role is its own, but its objects are the superuser's.
      fix: `-- as a superuser: alter extension ${ident(r.ext)} set schema public; -- and in migrations: create extension if not exists ${ident(r.ext)} schema public, naming its types public.<type>`,
    });
  });
}
