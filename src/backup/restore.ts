import { keyOwner } from '../catalog/tenants.js';
import { redactText } from '../config/redact.js';
import { errorMessage } from '../errors.js';
import type { TenantResult } from '../fanout/result.js';
import type { OperationRecord } from '../operations/operation-record.js';
import type { PlacedTenant } from '../placement/drivers.js';
import { removeLeftover, undoBuild } from '../placement/leftovers.js';
import type { ForeignKeyCheck } from '../copy/pool-load.js';
import type { ForeignKeyPath } from '../copy/pool-load-path.js';
import { faultAction, faultPoint } from '../operations/fault-points.js';
import type { LoadHow } from './restore-load.js';
import type { RestoreDeps } from './types.js';

/**
 * A restore's data path beside its lifecycle (restore-run.ts, through the operation engine): the
 * result's shape, the undo of a failed load, and the load itself (restore-load.ts: one path to a
 * loaded placement through src/build/).
 */
export type { RestoreDeps } from './types.js';
export { load, type Loaded, type LoadHow } from './restore-load.js';

export interface RestoreOptions {
  backup: string;
  as?: string;
  shard?: string;
  model?: string;
  replace?: boolean;
  /** Into a pool: how long the load waits for a lock another session holds on its tables, in ms (default 30 s). */
  lockWaitMs?: number;
}

export interface RestoreResult extends TenantResult {
  backup: string;
  key?: string;
  rows?: number;
  /** --replace: the backup taken of the tenant first. */
  safetyBackup?: string;
  replaced?: boolean;
  /** --replace of a schema or database tenant: its role (the names in `target` and the role are the application's, the same as before). */
  role?: string;
  /** --replace: how long the tenant's writes were refused (from the restore's first step to its switch). */
  writesRefusedMs?: number;
  /** --replace: how long the tenant's role could not connect (a database tenant's rename); 0 for a schema tenant. */
  unreachableMs?: number;
  /** --replace: the application's sessions ended at the replaced placement. */
  endedSessions?: number;
  warnings?: string[];
  /** How the restored rows' foreign keys were checked (see ForeignKeyCheck in src/copy/pool-load.ts). */
  foreignKeys?: ForeignKeyCheck;
  /** Into a pool: that path and why (the GRANT that gets the faster one), as a move reports it. */
  foreignKeyCheck?: ForeignKeyPath;
}

/**
 * After a failed load: remove what it made outside a transaction that rolled back (see
 * `undoCreate`); a placement built step by step goes whole, the tenant's role kept when it is a
 * live tenant's. Returns why it could not be removed, or undefined: what is left stays recorded in
 * the operation row for the next restore of the tenant (the sweep, src/operations/sweep/restores.ts).
 */
export async function undoFresh(deps: RestoreDeps, p: PlacedTenant, how: LoadHow, o: { keepRole: boolean }): Promise<string | undefined> {
  const { fleet, config } = deps;
  try {
    await undoBuild(fleet, config, p, { oneTransaction: how.oneTransaction, keepRole: o.keepRole });
    return undefined;
  } catch (err) {
    return redactText(errorMessage(err));
  }
}

/**
 * After a failure once the load has committed (Ctrl-C at the register step, the catalog write):
 * the new tenant's placement goes whole, or in a pool its key's rows, unless that key has become
 * another tenant's (whose rows are never touched). Returns why it could not be removed, or undefined.
 */
export async function removeLoaded(deps: RestoreDeps, p: PlacedTenant): Promise<string | undefined> {
  try {
    await removeLeftover(deps.fleet, deps.config, p, {
      tenantLives: false,
      keyOwner: () => keyOwner(deps.db, p.key),
    });
    return undefined;
  } catch (err) {
    return redactText(errorMessage(err));
  }
}

/** Tests' kill point: the placement is committed, the catalog not yet written. */
export async function hangAfterCommit(op: OperationRecord): Promise<void> {
  if (!faultAction('restore.committed')) return;
  await op.phase('committed');
  await faultPoint('restore.committed');
}
