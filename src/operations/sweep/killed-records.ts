import { closeKilledOperation } from '../operation-record.js';
import { runningRecords } from './records.js';
import type { Cleaner, Leftover } from './types.js';

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
      what: `${op.kind} ${op.id} still running`,
    }));
  },
  async clean(deps, slug, except) {
    const cleaned: Leftover[] = [];
    for (const op of await runningRecords(deps.db, RECORD_ONLY_KINDS, slug)) {
      if (Number(op.id) === except) continue;
      const note = `${op.kind} ${op.id} of ${slug} was killed; closed`;
      await closeKilledOperation(deps.db, Number(op.id), note);
      cleaned.push({ tenant: slug, kind: op.kind, operation: Number(op.id), what: note });
    }
    return cleaned;
  },
};
