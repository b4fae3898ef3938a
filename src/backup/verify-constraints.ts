import type { ConstraintState } from '../copy/not-valid-constraints.js';
import type { Manifest } from './manifest.js';

/** A constraint NOT VALID at the source and what a restore does for it (`backup verify`). */
export interface NotValidNeed extends ConstraintState {
  /** What a restore does, in words. */
  restore: string;
}

/**
 * What a restore of this backup must do for the constraints the source had NOT VALID (rules for
 * new rows only): each comes back NOT VALID (src/copy/not-valid-constraints.ts); those some of
 * the backup's rows break are held for the load. Null when the manifest predates the record
 * (format < 3): a restore then re-creates NOT VALID what the migrations make NOT VALID.
 *
 * @example
 *   restoreNeeds(manifest) // [{ table: 'users', name: 'users_no_u1', type: 'check', valid: false, violatingRows: 1, restore: '…' }]
 */
export function restoreNeeds(m: Pick<Manifest, 'constraints'>): NotValidNeed[] | null {
  if (!m.constraints) return null;
  return m.constraints
    .filter((k) => !k.valid)
    .map((k) => ({
      ...k,
      restore: k.violatingRows
        ? `${k.violatingRows} row(s) break it: a placement of the tenant's own gets it re-added NOT VALID after the load; ` +
          `shared tables keep it NOT VALID, dropped and re-added inside the load's transaction (ACCESS EXCLUSIVE on ${k.table} until the commit), refused where it is validated`
        : 'no row breaks it: the rows load checked, it stays NOT VALID',
    }));
}
