import { hostname } from 'node:os';
import { sql } from 'kysely';
import type { CatalogDb } from '../catalog/open.js';
import { currentActor } from '../catalog/actor.js';

/**
 * An operation (a backup, a restore, later a move) as an `operations` row: who runs it, its
 * phase and progress (rows, bytes) as JSON, a heartbeat so a reader can tell a live operation
 * from a crashed one, and how it ended.
 *
 * @example
 *   const op = await startOperation(db, { kind: 'backup', tenant: 'acme', args: { id } });
 *   await op.phase('copy', { rows: 0, bytes: 0 });
 *   await op.finish('succeeded', { rows: 1000, bytes: 81234 });
 */
export interface OperationRecord {
  readonly id: number;
  phase(phase: string, progress?: Record<string, unknown>): Promise<void>;
  /** Progress and heartbeat, written at most every `everyMs` (default 2 s); cheap to call often. */
  heartbeat(progress: Record<string, unknown>): Promise<void>;
  finish(status: 'succeeded' | 'failed' | 'interrupted', progress?: Record<string, unknown>): Promise<void>;
}

export async function startOperation(
  db: CatalogDb,
  o: { kind: string; tenant?: string | null; args?: Record<string, unknown>; everyMs?: number },
): Promise<OperationRecord> {
  const { actor, ciJob } = currentActor();
  const holder = `${actor}${ciJob ? ` (${ciJob})` : ''}, pid ${process.pid} on ${hostname()}`;
  const row = await db
    .insertInto('operations')
    .values({
      kind: o.kind,
      status: 'running',
      tenant_slug: o.tenant ?? null,
      holder,
      args: JSON.stringify(o.args ?? {}),
      progress: JSON.stringify({ phase: 'start' }),
    })
    .returning('id')
    .executeTakeFirstOrThrow();
  const id = Number(row.id);
  const everyMs = o.everyMs ?? 2000;
  let current: Record<string, unknown> = { phase: 'start' };
  let last = 0;
  const write = async (status?: string) => {
    last = Date.now();
    await db
      .updateTable('operations')
      .set({
        progress: JSON.stringify(current),
        heartbeat_at: sql`now()` as never,
        ...(status ? { status, finished_at: sql`now()` as never } : {}),
      })
      .where('id', '=', id)
      .execute();
  };
  return {
    id,
    async phase(phase, progress = {}) {
      current = { ...current, ...progress, phase };
      await write();
    },
    async heartbeat(progress) {
      current = { ...current, ...progress };
      if (Date.now() - last >= everyMs) await write();
    },
    async finish(status, progress = {}) {
      current = { ...current, ...progress, phase: status === 'succeeded' ? 'done' : current.phase };
      await write(status);
    },
  };
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
