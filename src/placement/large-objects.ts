import type pg from 'pg';
import { UsageError, type ErrorCode } from '../errors.js';
import { MODEL_TRAITS } from './placement.js';
import { tenantRoleName } from './naming.js';
import type { Model } from '../config/types.js';

/**
 * Large objects live outside every table (pg_largeobject), so nothing tenantctl copies holds
 * them: a move would drop them with the source at `move complete` (and one written to the source
 * after the switch is not refused by the fence, which guards tables); a backup would leave them
 * out, and a delete's final backup with it, so the delete would destroy them unsaid. A tenant
 * role's own large objects are named and refused before anything changes. (A pool tenant's are
 * the serving role's, shared: audit's pool.large-objects says to keep files elsewhere.)
 *
 * @example
 *   await refuseLargeObjects(c, { slug: 'acme', model: 'schema', shard: 'us1', database: 'tenant_schemas' }, 'move', 'MOVE_FAILED');
 */
export async function refuseLargeObjects(
  c: Pick<pg.ClientBase, 'query'>,
  t: { slug: string; model: Model; shard: string; database: string },
  what: 'move' | 'backup',
  code: ErrorCode,
): Promise<void> {
  if (!MODEL_TRAITS[t.model].ownRole) return;
  const role = tenantRoleName(t.slug);
  const { rows } = await c.query<{ n: number }>(
    `select count(*)::int as n from pg_largeobject_metadata where lomowner = (select oid from pg_roles where rolname = $1)`,
    [role],
  );
  const n = rows[0].n;
  if (n === 0) return;
  const lost =
    what === 'move' ? 'a move copies tables only, so they would be lost' : 'a backup holds tables only, so they would not be in it';
  throw new UsageError(
    code,
    `${t.slug}'s role ${role} owns ${n} large object${n === 1 ? '' : 's'} in ${t.shard}/${t.database}; ${lost}; nothing was changed`,
    `move their contents into a bytea column of a tenant table (or object storage) in a migration, remove the large objects (lo_unlink), then ${what === 'move' ? 'move' : 'back up (a tenant delete takes a final backup: --skip-backup deletes them with it)'}`,
  );
}
