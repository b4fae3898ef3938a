import type { Model } from '../config/types.js';
import type { MigrationFile } from '../migrate/files.js';
import type { OperationDeps } from '../operations/command-deps.js';

// Types shared by create.ts, restore.ts, the sweep and replace-switch.ts (so none imports another for a type).

/** What a per-tenant operation gets (config, catalog, fleet, command, lock waiting), plus progress. */
export interface BackupDeps extends OperationDeps {
  /** Live progress of one tenant's backup (rows and stored bytes so far). */
  onProgress?: (p: { tenant: string; table: string; rows: number; bytes: number; total?: number }) => void;
}

export interface RestoreDeps extends BackupDeps {
  migrations: MigrationFile[];
}

/** What a restore records before it makes anything: where its fresh placement goes. */
export interface RestorePlacement {
  model: Model;
  shard: string;
  database_name: string;
  schema_name: string;
  key: string;
}
