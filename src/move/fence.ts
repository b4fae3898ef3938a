import type { Config } from '../config/types.js';
import type { Fleet } from '../fleet/fleet.js';
import type { ShardClient } from '../fleet/shard-connections.js';
import { TenantctlError } from '../errors.js';
import { databaseExists } from '../placement/pool/rows.js';
import { poolFenceHolders, releasePoolFence, takePoolFence } from '../placement/pool/fence.js';
import { isLockTimeout } from '../copy/load-lock-wait.js';
import { tableLockHolders } from '../migrate/table-lock-holders.js';
import { fenceTables, unfenceTables } from '../placement/table-fence.js';
import type { MoveEnd } from './plan.js';
import { drivers } from '../placement/drivers.js';

/**
 * A write fence as the move records it (in its operations row, before it is taken):
 * `advisory` for a pool tenant (a session lock in the pool database, gone with its session),
 * `trigger` for a schema or database tenant (statement triggers, which persist until lifted).
 */
export interface FenceRecord {
  kind: 'advisory' | 'trigger';
  shard: string;
  database: string;
  schema: string;
  key: string;
  /** ISO time the fence was in place (writes blocked from here). */
  at?: string;
  liftedAt?: string;
}

export interface HeldFence {
  record: FenceRecord;
  /** Lift it (idempotent); `lockWaitMs` bounds the wait for the tables' locks (a trigger fence's DROP TRIGGER). */
  lift(opts?: { lockWaitMs?: number }): Promise<void>;
}

/** How long taking a fence may wait for the tenant's in-flight writes. */
export const FENCE_WAIT_MS = 30_000;

export function fenceRecordFor(end: MoveEnd, key: string): FenceRecord {
  return { kind: drivers[end.model].fence.write, shard: end.shard, database: end.database, schema: end.schema, key };
}

/**
 * The pool's fence policies, once per pool target (idempotent; part of its managed state): the
 * move's fence and the switch fence (src/placement/pool/switch-fence.ts), so that the DDL on the
 * shared tables happens here, before the tenant's writes are blocked, never while they are.
 */
export async function preparePoolFence(fleet: Fleet, config: Config, end: MoveEnd): Promise<void> {
  await drivers[end.model].prepareFence(fleet, config, end, FENCE_WAIT_MS);
}

/**
 * Block the tenant's writes at `end`, waiting for its in-flight writes to commit first; reads go
 * on, other tenants are untouched (see src/placement/pool/fence.ts and table-fence.ts).
 */
export async function takeFence(fleet: Fleet, rec: FenceRecord): Promise<HeldFence> {
  const fail = (err: unknown, holders = ''): never => {
    const lockTimeout = (err as { code?: string }).code === '55P03';
    throw new TenantctlError(
      'MOVE_FAILED',
      lockTimeout
        ? `the tenant's writes did not finish within ${FENCE_WAIT_MS / 1000} s${holders}, so its writes could not be fenced; nothing was changed`
        : `fencing the tenant's writes at ${rec.shard}/${rec.database}/${rec.schema} failed: ${(err as Error).message}`,
      lockTimeout
        ? `a long transaction is open on the tenant's data${holders ? ' (the sessions named; a pool session names its application, which may be another tenant)' : ''}: end it (pg_terminate_backend(pid) as its owner), then run the move again`
        : undefined,
    );
  };
  if (rec.kind === 'advisory') {
    const conns = fleet.connections(rec.shard);
    const c: ShardClient = await conns.acquire(rec.database);
    try {
      await takePoolFence(c, rec.key, FENCE_WAIT_MS);
    } catch (err) {
      // Who held the tenant's write lock, read on this session before it is let go.
      const holders = isLockTimeout(err) ? await poolFenceHolders(c, rec.key) : '';
      c.tenantctlBroken = true;
      conns.release(c);
      fail(err, holders);
    }
    let lifted = false;
    return {
      record: { ...rec, at: new Date().toISOString() },
      async lift() {
        if (lifted) return;
        lifted = true;
        try {
          await releasePoolFence(c, rec.key);
        } catch {
          // The session is closed instead: the lock goes with it.
          c.tenantctlBroken = true;
        } finally {
          conns.release(c);
        }
      },
    };
  }
  try {
    await fleet.withTransaction(rec.shard, rec.database, (c) => fenceTables(c, rec.schema, FENCE_WAIT_MS));
  } catch (err) {
    const holders = isLockTimeout(err)
      ? await fleet.withClient(rec.shard, rec.database, (c) => tableLockHolders(c, rec.schema)).catch(() => '')
      : '';
    fail(err, holders);
  }
  let lifted = false;
  return {
    record: { ...rec, at: new Date().toISOString() },
    async lift(opts) {
      if (lifted) return;
      await liftRecordedFence(fleet, rec, opts);
      lifted = true;
    },
  };
}

/**
 * Lift a fence a move recorded, whoever took it: a `trigger` fence is dropped; an `advisory`
 * fence of a dead process is already gone with its session. Safe when the placement is gone.
 */
export async function liftRecordedFence(fleet: Fleet, rec: FenceRecord, opts: { lockWaitMs?: number } = {}): Promise<void> {
  if (rec.kind === 'advisory') return;
  if (!(await databaseExists(fleet, rec.shard, rec.database))) return;
  await fleet.withTransaction(rec.shard, rec.database, async (c) => {
    if (opts.lockWaitMs !== undefined) await c.query(`set local lock_timeout = ${Math.max(1, Math.floor(opts.lockWaitMs))}`);
    await unfenceTables(c, rec.schema);
  });
}
