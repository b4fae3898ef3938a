import type { CatalogDb } from '../../catalog/open.js';
import type { Config } from '../../config/types.js';
import type { TenantctlError } from '../../errors.js';
import type { Fleet } from '../../fleet/fleet.js';

/** What the sweep needs: the fleet, its catalog, and the command it runs for (event log). */
export interface SweepDeps {
  config: Config;
  db: CatalogDb;
  fleet: Fleet;
  command: string;
}

/** One thing a killed operation left: as found (a dry run, doctor) or as cleaned. */
export interface Leftover {
  tenant: string;
  /** The kind of operation that left it (backup, restore, move). */
  kind: string;
  /** The operation's record, when the leftover has one. */
  operation?: number;
  what: string;
  /** Each step done, when cleaned in several (a move's recovery). */
  done?: string[];
  /** Cleaning it failed (it stays recorded for the next command): why, as the error to stop with. */
  stuck?: TenantctlError;
}

/**
 * What one kind of operation leaves when its process dies, and how it is cleaned. `find` only
 * reads; `clean` runs under the tenant's lock, so nothing it finds belongs to a live operation.
 */
export interface Cleaner {
  kind: string;
  /** Of one tenant, or fleet-wide (no slug); the caller keeps only tenants whose lock is free. */
  find(deps: SweepDeps, slug?: string): Promise<Leftover[]>;
  /** Clean the tenant's leftovers, except the record `except` (the caller's own operation). */
  clean(deps: SweepDeps, slug: string, except?: number): Promise<Leftover[]>;
}
