import type { Fleet } from '../fleet/fleet.js';
import type { MigrationFile } from '../migrate/files.js';
import { UsageError } from '../errors.js';
import { ADMIN_DATABASE } from '../placement/databases.js';
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
  // One a killed create left with connections off has no migration applied yet; the create opens it.
  const existing = await fleet.withClient(shard, ADMIN_DATABASE, async (c) =>
    (
      await c.query<{ datname: string }>('select datname from pg_database where datname = any($1::text[]) and datallowconn', [todo])
    ).rows.map((r) => r.datname),
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
export { assertNothingThere } from '../placement/nothing-there.js';
