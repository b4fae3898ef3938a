import type { Model } from '../config/types.js';
import type { MigrationFile } from '../migrate/files.js';
import type { BackupDeps } from './create.js';

// Types shared by restore.ts, restore-leftovers.ts and replace-switch.ts (so none imports another for a type).

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
