import type { CatalogDb } from '../catalog/open.js';
import type { Config } from '../config/types.js';
import type { Fleet } from '../fleet/fleet.js';

// What a per-tenant command needs (create, delete, suspend, credentials, backup): below both
// provision/ and backup/, so neither imports the other for it.

export interface OperationDeps {
  config: Config;
  db: CatalogDb;
  fleet: Fleet;
  command: string;
  /** Wait for another command's lock on the tenant instead of exit 3. */
  wait?: boolean;
  onWaiting?: (holder: string) => void;
  /** Ctrl-C / SIGTERM (default: the process's, interrupt.ts). */
  signal?: AbortSignal;
  /** Where the first Ctrl-C's notice goes (default stderr). */
  out?: (line: string) => void;
}

/** What a lifecycle command gets: the tenant-operation engine's deps. */
export type LifecycleDeps = OperationDeps;
