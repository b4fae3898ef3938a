import type { CatalogDb } from '../catalog/open.js';
import type { TenantStatus } from '../catalog/tables.js';
import { insertOperation, OperationRecord, tenantOperations } from '../operations/operation-record.js';
import type { MovePlan } from './plan.js';
import type { FenceRecord } from './fence.js';
import type { SwitchFenceRecord } from './types.js';
import type { TableChange } from './unchanged.js';
import type { TableCheck } from './copy.js';
import type { VerifiedUnderFence } from './types.js';
import type { ForeignKeyPath } from '../copy/pool-load-path.js';
import type { ReplicationRecord } from './replication.js';
import type { CaptureRecord } from './capture/install.js';
import type { OnlineVia } from './online-preflight.js';

/**
 * A move's `operations` row (kind 'move'). Its status says where the tenant's data is whole:
 *  - `running`: the catalog still points at the source; anything at the target is a leftover
 *    (a killed mover leaves it `running`; the next move command cleans up from what it records);
 *  - `switched`: the catalog points at the target; the source is kept for `move rollback`;
 *  - `succeeded` (after `move complete`), `rolled back`, `failed`, `interrupted`: over.
 * The progress records, BEFORE each is made, the fence and whether the target placement was
 * created, so a later command can undo them without guessing.
 */
export type MoveStatus = 'running' | 'switched' | 'succeeded' | 'rolled back' | 'failed' | 'interrupted';

export interface MoveArgs {
  plan: MovePlan;
  /** The tenant's status before the move (restored when it ends). */
  status: TenantStatus;
  statusDetail: string | null;
  resumedFrom?: number;
  /** An online move (online-start.ts). */
  online?: boolean;
  /** How it captures the tenant's writes: logical replication (online-run.ts) or triggers (online-capture-run.ts). */
  onlineVia?: OnlineVia;
}

export interface MoveProgress {
  phase: string;
  /** Phase → duration (ms), as each completes. */
  phases?: Record<string, number>;
  fence?: FenceRecord;
  /** The target placement may exist (created, or being created): remove it when the move does not switch. */
  targetCreated?: boolean;
  rows?: number;
  bytes?: number;
  tables?: TableCheck[];
  /** How the load checked foreign keys, and why (an offline move's; recorded at the switch). */
  foreignKeyCheck?: ForeignKeyPath;
  /** An online move by replication: what its verify compared under the fence. */
  verifiedUnderFence?: VerifiedUnderFence;
  /** `tables` are an online capture's proof, older than the switch: measured again after it (tables-at-switch.ts). */
  tablesPending?: boolean;
  writeBlockedMs?: number;
  /** The source's fence from the switch until `move complete` or `move rollback` (switch-fence.ts). */
  switchFence?: SwitchFenceRecord;
  /** Per table, the columns the move digested at the source: what `move complete` measures again. */
  sourceColumns?: Record<string, string[]>;
  /** `move complete` found the source unchanged (a killed complete then removes it without measuring again). */
  sourceCheckedAt?: string;
  /** What `move complete --discard-source-writes` found written at the source and removed. */
  sourceDiscarded?: TableChange[];
  /** An online move's publication, slot and subscription, recorded before each is made. */
  replication?: ReplicationRecord;
  /** A trigger-capture move's triggers and change table, recorded before they are made. */
  capture?: CaptureRecord;
  error?: string;
  [k: string]: unknown;
}

export interface MoveRow {
  id: number;
  status: MoveStatus;
  holder: string;
  args: MoveArgs;
  progress: MoveProgress;
  startedAt: Date;
  heartbeatAt: Date;
  finishedAt: Date | null;
}

/** A move's record: the one operations writer (operation-record.ts) with the move's args and progress. */
export class MoveRecord extends OperationRecord<MoveProgress, MoveArgs> {
  static async start(db: CatalogDb, args: MoveArgs): Promise<MoveRecord> {
    const progress: MoveProgress = { phase: 'preflight', phases: {} };
    const { id } = await insertOperation(db, { kind: 'move', tenant: args.plan.tenant, args, progress });
    return new MoveRecord(db, id, args, progress);
  }

  static of(db: CatalogDb, row: MoveRow): MoveRecord {
    return new MoveRecord(db, row.id, row.args, row.progress);
  }

  /** Merge into the progress and write it (with the status, when given) — in `tx` when given. */
  override async update(patch: Partial<MoveProgress>, status?: MoveStatus, tx: CatalogDb = this.db): Promise<void> {
    await super.update(patch, status, tx);
  }
}

/** The tenant's move that is not over (running or switched), newest first. */
export async function openMove(db: CatalogDb, slug: string): Promise<MoveRow | undefined> {
  const rows = await moves(db, slug, ['running', 'switched']);
  return rows[0];
}

/** The tenant's latest move, whatever its status. */
export async function latestMove(db: CatalogDb, slug: string): Promise<MoveRow | undefined> {
  return (await moves(db, slug))[0];
}

async function moves(db: CatalogDb, slug: string, statuses?: MoveStatus[]): Promise<MoveRow[]> {
  const rows = await tenantOperations(db, { kind: 'move', slug, statuses });
  return rows.map((r) => ({
    ...r,
    status: r.status as MoveStatus,
    args: r.args as MoveArgs,
    progress: (r.progress ?? { phase: 'preflight' }) as MoveProgress,
  }));
}
