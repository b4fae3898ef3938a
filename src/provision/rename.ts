import { recordEvent } from '../catalog/events.js';
import { getTenant, updateTenant } from '../catalog/tenants.js';
import type { TenantRow } from '../catalog/tables.js';
import { UsageError } from '../errors.js';
import { withTenantLock } from '../operations/tenant-lock.js';
import type { LifecycleDeps } from './lifecycle.js';
import { nameProblem } from './name.js';

export interface RenameOutcome {
  tenant: TenantRow;
  /** The display name before; equal to the new one when nothing had to change. */
  from: string;
  changed: boolean;
}

/**
 * Why `tenant rename` changes the display name and not the slug: the slug is an identity that
 * PostgreSQL objects and stored data carry (the role `tenant_<slug>`, the schema or database
 * `t_<slug>` a new tenant of the old slug would collide with, the backup folders and archive ids,
 * the backup data keys, the tenant lock, the events). Renaming them is not one atomic step.
 */
export const SLUG_IS_IDENTITY =
  "a tenant's slug cannot be changed: its role (tenant_<slug>), schema or database (t_<slug>), backups, backup data keys and events are named by it";

/**
 * Change a tenant's display name in the catalog, under the tenant's lock, with an event. Nothing
 * on the shards changes: resolve prints the same URLs. The same name again is a no-op (exit 0).
 *
 * @example
 *   await renameTenant(deps, 'acme', 'Acme Corporation'); // { from: 'acme', changed: true, tenant: { name: 'Acme Corporation', … } }
 */
export async function renameTenant(deps: LifecycleDeps, slug: string, name: string): Promise<RenameOutcome> {
  const problem = nameProblem(name);
  if (problem) throw new UsageError('BAD_INPUT', `--name ${problem}`, 'give a shorter display name');
  if (!name.trim()) throw new UsageError('BAD_INPUT', '--name is empty', 'give the display name, e.g. --name "Acme Corporation"');
  await getTenant(deps.db, slug); // a missing tenant is exit 2 before any lock
  return withTenantLock(deps.db, slug, { command: deps.command, wait: deps.wait, onWaiting: deps.onWaiting }, async () => {
    // Read under the lock: another command may have changed or deleted it meanwhile.
    const t = await getTenant(deps.db, slug);
    if (t.name === name) return { tenant: t, from: t.name, changed: false };
    await deps.db.transaction().execute(async (tx) => {
      await updateTenant(tx, slug, { name });
      await recordEvent(tx, { command: deps.command, action: 'renamed', result: 'ok', tenant: slug, details: { from: t.name, to: name } });
    });
    return { tenant: await getTenant(deps.db, slug), from: t.name, changed: true };
  });
}
