import { hostname } from 'node:os';
import { sql, type Kysely } from 'kysely';
import type { CatalogDb } from '../catalog/open.js';
import type { CatalogDatabase } from '../catalog/tables.js';
import { currentActor } from '../catalog/actor.js';

/**
 * The ONE writer of the `operations` table: an operation (backup, restore, move, delete, a
 * migrate run) as a row naming who runs it, its phase and progress (rows, bytes) as JSON, a
 * heartbeat so a reader can tell a live operation from a crashed one, and how it ended. The
 * tenant-operation engine (tenant-operation.ts) owns one per operation; a move's record
 * (src/move/record.ts) and a migrate run's (src/migrate/run-record.ts) are this class with their
 * own progress types.
 *
 * @example
 *   const op = await startOperation(db, { kind: 'backup', tenant: 'acme', args: { id } });
 *   await op.phase('copy', { rows: 0, bytes: 0 });
 *   await op.finish('succeeded', { rows: 1000, bytes: 81234 });
 */
export type OperationStatus = 'running' | 'switched' | 'succeeded' | 'failed' | 'interrupted' | 'rolled back' | 'crashed';

/** A status after which the operation is over (its finish time is set). */
const isOver = (s: string) => s !== 'running' && s !== 'switched';

export interface OperationProgress {
  phase?: string;
  [k: string]: unknown;
}

export class OperationRecord<P extends OperationProgress = OperationProgress, A = Record<string, unknown>> {
  private last = 0;
  /** Its status is over (succeeded, failed, interrupted, rolled back). */
  over = false;
  /**
   * The body leaves it running on purpose (what it made could not be removed: the next
   * operation's sweep finishes it): the engine's failure path does not close it.
   */
  keep = false;
  constructor(
    protected readonly db: Kysely<CatalogDatabase>,
    readonly id: number,
    readonly args: A,
    public progress: P,
    private readonly everyMs = 2000,
  ) {}

  /** Merge into the progress and write it (with the status, when given) — in `tx` when given. */
  async update(patch: Partial<P>, status?: OperationStatus, tx: Kysely<CatalogDatabase> = this.db): Promise<void> {
    this.progress = { ...this.progress, ...patch };
    this.last = Date.now();
    await writeOperation(tx, this.id, { progress: this.progress, status });
    if (status) this.over = isOver(status);
  }

  /** The operation entered `phase`. */
  async phase(phase: string, progress: Partial<P> = {}): Promise<void> {
    await this.update({ ...progress, phase } as Partial<P>);
  }

  /** A phase has completed: record it and how long it took. */
  async phaseDone(phase: string, ms: number, patch: Partial<P> = {}): Promise<void> {
    const phases = { ...((this.progress as { phases?: Record<string, number> }).phases ?? {}), [phase]: ms };
    await this.update({ ...patch, phase, phases } as Partial<P>);
  }

  /** Progress and heartbeat, written at most every `everyMs` (default 2 s); cheap to call often. */
  async heartbeat(patch: Partial<P>): Promise<void> {
    this.progress = { ...this.progress, ...patch };
    if (Date.now() - this.last >= this.everyMs) await this.update({});
  }

  async finish(status: OperationStatus, progress: Partial<P> = {}): Promise<void> {
    await this.update(this.finalProgress(status, progress), status);
  }

  /**
   * The columns that finish it, for a statement that writes them together with the body's last
   * change (create: in the one that turns the tenant active); call finishedBy once it committed.
   */
  finishValues(status: OperationStatus, progress: Partial<P> = {}) {
    return {
      status,
      progress: JSON.stringify({ ...this.progress, ...this.finalProgress(status, progress) }),
      heartbeat_at: sql`now()` as never,
      ...(isOver(status) ? { finished_at: sql`now()` as never } : {}),
    };
  }

  /** The statement built from finishValues committed: the record says so now. */
  finishedBy(status: OperationStatus, progress: Partial<P> = {}): void {
    this.progress = { ...this.progress, ...this.finalProgress(status, progress) };
    this.last = Date.now();
    this.over = isOver(status);
  }

  private finalProgress(status: OperationStatus, progress: Partial<P>): Partial<P> {
    return { ...progress, phase: status === 'succeeded' ? 'done' : this.progress.phase } as Partial<P>;
  }
}

/** Who runs this process: `alice (github:org/repo#7), pid 1234 on build-3`. */
export function operationHolder(): string {
  const { actor, ciJob } = currentActor();
  return `${actor}${ciJob ? ` (${ciJob})` : ''}, pid ${process.pid} on ${hostname()}`;
}

export interface NewOperation {
  kind: string;
  tenant?: string | null;
  holder?: string;
  args?: unknown;
  progress?: unknown;
}

/** A running operation's row, for insertOperation or a statement that inserts it with the operation's first change. */
export function operationValues(o: NewOperation) {
  return {
    kind: o.kind,
    status: 'running',
    tenant_slug: o.tenant ?? null,
    holder: o.holder ?? operationHolder(),
    args: JSON.stringify(o.args ?? {}),
    progress: JSON.stringify(o.progress ?? { phase: 'start' }),
  };
}

/** Insert a running operation row (in `db`, which may be a transaction); its id and start time. */
export async function insertOperation(db: Kysely<CatalogDatabase>, o: NewOperation): Promise<{ id: number; startedAt: Date }> {
  const row = await db.insertInto('operations').values(operationValues(o)).returning(['id', 'started_at']).executeTakeFirstOrThrow();
  return { id: Number(row.id), startedAt: row.started_at };
}

/** Write an operation's progress (and status: an over one gets its finish time) with a fresh heartbeat. */
export async function writeOperation(
  db: Kysely<CatalogDatabase>,
  id: number,
  o: { progress: unknown; status?: OperationStatus },
): Promise<void> {
  await db
    .updateTable('operations')
    .set({
      progress: JSON.stringify(o.progress),
      heartbeat_at: sql`now()` as never,
      ...(o.status ? { status: o.status } : {}),
      ...(o.status && isOver(o.status) ? { finished_at: sql`now()` as never } : {}),
    })
    .where('id', '=', id)
    .execute();
}

export async function startOperation<P extends OperationProgress = OperationProgress, A = Record<string, unknown>>(
  db: CatalogDb,
  o: { kind: string; tenant?: string | null; args?: A; progress?: P; everyMs?: number },
): Promise<OperationRecord<P, A>> {
  const progress = (o.progress ?? { phase: 'start' }) as P;
  const { id } = await insertOperation(db, { kind: o.kind, tenant: o.tenant, args: o.args, progress });
  return new OperationRecord<P, A>(db, id, (o.args ?? {}) as A, progress, o.everyMs);
}

/**
 * Close the record of an operation that was killed (no live holder) as failed, with `note`
 * (what was found and cleaned) as its error. The crash sweeps of restore and backup use it.
 */
export async function closeKilledOperation(db: CatalogDb, id: number, note: string): Promise<void> {
  await db
    .updateTable('operations')
    .set({
      status: 'failed',
      finished_at: sql`now()` as never,
      progress: sql`progress || ${JSON.stringify({ error: note })}::jsonb` as never,
    })
    .where('id', '=', id)
    .execute();
}

/** A tenant's operations of one kind, newest first (with `statuses`: only those). */
export async function tenantOperations(
  db: CatalogDb,
  o: { kind: string; slug: string; statuses?: string[]; limit?: number },
): Promise<
  {
    id: number;
    status: string;
    holder: string;
    args: unknown;
    progress: unknown;
    startedAt: Date;
    heartbeatAt: Date;
    finishedAt: Date | null;
  }[]
> {
  let q = db.selectFrom('operations').selectAll().where('kind', '=', o.kind).where('tenant_slug', '=', o.slug);
  if (o.statuses) q = q.where('status', 'in', o.statuses);
  const rows = await q
    .orderBy('id', 'desc')
    .limit(o.limit ?? 1)
    .execute();
  return rows.map((r) => ({
    id: Number(r.id),
    status: r.status,
    holder: r.holder,
    args: r.args,
    progress: r.progress,
    startedAt: r.started_at,
    heartbeatAt: r.heartbeat_at,
    finishedAt: r.finished_at,
  }));
}
