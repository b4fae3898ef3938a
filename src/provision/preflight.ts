import type { Fleet } from '../fleet/fleet.js';
import type { MigrationFile } from '../migrate/files.js';
import { UsageError } from '../errors.js';
import { ADMIN_DATABASE } from '../placement/databases.js';
import type { Placement } from '../placement/naming.js';
import { tenantRole } from '../placement/placement.js';
import { drivers } from '../placement/drivers.js';
import { TRACKING } from '../migrate/tracking.js';
import { basename } from 'node:path';

/**
 * Checks `tenant create` makes at the shard before the catalog records anything (exit 2, nothing
 * changed): no drift, and nothing in the way of the new placement.
 */

/**
 * Refuse while an applied migration differs from its file on any database the tenant's
 * placement shares migrations with (its own, and the shard's pool and schema databases): a
 * tenant built from an edited file would read "at head" and be drifted for ever once the file is
 * restored. A database found clean is remembered in `checked` (bulk runs check each once).
 *
 * @example
 *   await assertNoDrift(fleet, 'us1', ['tenant_schemas', 'tenant_pool'], migrations);
 */
export async function assertNoDrift(
  fleet: Fleet,
  shard: string,
  databases: string[],
  migrations: MigrationFile[],
  checked: Set<string> = new Set(),
): Promise<void> {
  const todo = [...new Set(databases)].filter((d) => !checked.has(`${shard}/${d}`));
  if (todo.length === 0) return;
  const existing = await fleet.withClient(shard, ADMIN_DATABASE, async (c) =>
    (await c.query<{ datname: string }>('select datname from pg_database where datname = any($1::text[])', [todo])).rows.map(
      (r) => r.datname,
    ),
  );
  const files = new Map(migrations.map((m) => [m.id, m]));
  const drifted = new Map<string, string[]>();
  for (const database of existing) {
    const rows = await fleet.withClient(shard, database, async (c) => {
      const t = await c.query<{ t: string | null }>('select to_regclass($1)::text as t', [TRACKING]);
      if (!t.rows[0]?.t) return [];
      return (await c.query<{ name: string; checksum: string }>(`select name, checksum from ${TRACKING} group by name, checksum`)).rows;
    });
    for (const r of rows) {
      const f = files.get(r.name);
      if (f && f.checksum !== r.checksum) drifted.set(f.id, [...(drifted.get(f.id) ?? []), `${shard}/${database}`]);
    }
  }
  if (drifted.size > 0) {
    const list = [...drifted].map(([id, where]) => `${basename(files.get(id)!.file)} (applied differently on ${where.join(', ')})`);
    throw new UsageError(
      'DRIFT',
      `migration files were edited after they were applied: ${list.join('; ')}; a new tenant would be built from the edited files`,
      'restore those files to what was applied (git checkout them) and put the change in a new migration (tenantctl migrate create); see tenantctl migrate status',
    );
  }
  for (const d of todo) checked.add(`${shard}/${d}`);
}

/**
 * A new tenant's schema (schema model), database (database model) and role must not exist yet:
 * tenantctl never adopts what it did not make in this tenant's own provisioning (a leftover of a
 * deleted tenant, or someone else's objects would otherwise be taken over silently).
 */
export async function assertNothingThere(fleet: Fleet, t: Placement & { slug: string }): Promise<void> {
  const found = await drivers[t.model].existing(fleet, { ...t, role: tenantRole(t) });
  if (found.length === 0) return;
  throw new UsageError(
    'PLACEMENT_EXISTS',
    `tenant "${t.slug}" is not in the catalog, but ${found.join(' and ')} already exist${found.length === 1 ? 's' : ''} on shard ${t.shard}; tenantctl did not make ${found.length === 1 ? 'it' : 'them'} for this tenant and will not adopt ${found.length === 1 ? 'it' : 'them'}`,
    `inspect and drop ${found.length === 1 ? 'it' : 'them'} yourself if ${found.length === 1 ? 'it is' : 'they are'} leftovers, or pick another slug`,
  );
}
