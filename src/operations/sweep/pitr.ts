import { scratchRecords, sweepScratches } from '../../pitr/sweep.js';
import type { Cleaner, Leftover } from './types.js';

/**
 * What a killed `restore --at` leaves: its scratch cluster and folder, its interim archive (a
 * published archive of the tenant as it was at the time asked for), its `running` record. The
 * restore holds the tenant's lock only while it extracts, so a record is a dead one's only when
 * its process is gone (src/pitr/sweep.ts checks); its own record (`except`) is never one.
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
          what: `scratch cluster ${s.scratch}${s.interim ? ` and interim archive ${s.interim.id}` : ''} of a killed restore --at`,
        }),
      );
  },
  async clean(deps, slug) {
    return (await sweepScratches(deps.db, deps.config, slug)).map((what): Leftover => ({ tenant: slug, kind: 'restore --at', what }));
  },
};
