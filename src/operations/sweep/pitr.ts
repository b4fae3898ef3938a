import { scratchRecords, sweepScratches } from '../../pitr/sweep.js';
import type { Cleaner, Leftover } from './types.js';

/**
 * What a killed `restore --at` leaves: its scratch cluster and folder, its `running` record (a
 * kill during the load also leaves what the backup restore's own record names, swept by its
 * cleaner). The scratch cluster is not under the tenant's lock, so a record is a dead one's only
 * when its process is gone (src/pitr/sweep.ts checks); its own record (`except`) is never one.
 */
export const pitrCleaner: Cleaner = {
  kind: 'restore --at',
  async find(deps, slug) {
    return (await scratchRecords(deps.db, slug))
      .filter((s) => !s.live)
      .map(
        (s): Leftover => ({
          tenant: s.tenant ?? '',
          kind: 'restore --at',
          operation: s.operation,
          what: `scratch cluster ${s.scratch} of a killed restore --at`,
        }),
      );
  },
  async clean(deps, slug) {
    return (await sweepScratches(deps.db, slug)).map((what): Leftover => ({ tenant: slug, kind: 'restore --at', what }));
  },
};
