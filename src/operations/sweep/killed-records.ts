import { closeKilledOperation } from '../operation-record.js';
import { runningRecords } from './records.js';
import type { Cleaner, Leftover, SweepDeps } from './types.js';
import { findTenant } from '../../catalog/tenants.js';
import { tenantRole } from '../../placement/placement.js';
import { ADMIN_DATABASE } from '../../placement/databases.js';
import { setRoleLogin } from '../../placement/roles.js';

/**
 * Operations that make nothing a crash could leave half-made outside their tenant's placement
 * (create finishes or undoes its own placement on a re-run, delete re-runs to the end, suspend
 * and resume re-apply the access state), but still own a record: a killed one's stays `running`.
 * Under the tenant's lock no live operation of these kinds exists besides the caller's own, so
 * such a record is a dead one's: it is closed as failed.
 */
export const RECORD_ONLY_KINDS = ['create', 'delete', 'suspend', 'resume', 'credentials'] as const;

export const killedRecordCleaner: Cleaner = {
  kind: 'record',
  async find(deps, slug) {
    return (await runningRecords(deps.db, RECORD_ONLY_KINDS, slug)).map((op) => ({
      tenant: op.tenant_slug ?? '',
      kind: op.kind,
      operation: Number(op.id),
      // Not the generic "any backup, restore or move cleans it": a deleting tenant is backed up by
      // nobody, and these finish only by being run again.
      what: `${op.kind} ${op.id} still running (run the ${op.kind} again to finish it)`,
    }));
  },
  async clean(deps, slug, except) {
    const cleaned: Leftover[] = [];
    for (const op of await runningRecords(deps.db, RECORD_ONLY_KINDS, slug)) {
      if (Number(op.id) === except) continue;
      let note = `${op.kind} ${op.id} of ${slug} was killed; closed`;
      // A rotation takes LOGIN off while it ends the old password's sessions (provision/credentials.ts).
      if (op.kind === 'credentials') note += await loginBack(deps, slug);
      await closeKilledOperation(deps.db, Number(op.id), note);
      cleaned.push({ tenant: slug, kind: op.kind, operation: Number(op.id), what: note });
    }
    return cleaned;
  },
};

/** After a killed rotation: an active tenant's role may log in again (a suspended one's stays off). */
async function loginBack(deps: SweepDeps, slug: string): Promise<string> {
  const t = await findTenant(deps.db, slug);
  const role = t ? tenantRole(t) : null;
  if (!t || !role || t.status !== 'active') return '';
  await deps.fleet.withClient(t.shard, ADMIN_DATABASE, (c) => setRoleLogin(c, role, true));
  return `; its role ${role} may log in again`;
}
