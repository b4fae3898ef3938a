import type pg from 'pg';
import { TenantctlError, type ErrorCode } from '../errors.js';
import { tableLockHolders } from '../migrate/table-lock-holders.js';

type Q = Pick<pg.ClientBase, 'query'>;

/**
 * How long a load into shared pool tables waits, by default, for a lock another session holds.
 * A pool's tables are every tenant's: a neighbour's `LOCK TABLE … IN SHARE MODE` (its role may
 * UPDATE the table, so it may lock it) or a row lock on a parent holds the load, and with it the
 * moving tenant's fenced writes, for as long as the neighbour likes. Waiting is right for a
 * moment's lock; waiting forever is not: past this the load stops and says who held it.
 */
export const LOAD_LOCK_WAIT_MS = 30_000;

/** The lock modes a load's inserts (ROW EXCLUSIVE) wait for: SHARE and stronger. */
const BLOCKS_INSERTS = ['ShareLock', 'ShareRowExclusiveLock', 'ExclusiveLock', 'AccessExclusiveLock'];

/** Bound this transaction's lock waits (tables and rows) to `ms`. */
export async function boundLockWait(c: Q, ms: number): Promise<void> {
  await c.query(`set local lock_timeout = ${Math.max(1, Math.floor(ms))}`);
}

/** Whether `err` is a lock wait running out (lock_timeout). */
export function isLockTimeout(err: unknown): boolean {
  return (err as { code?: string } | undefined)?.code === '55P03';
}

/**
 * `err` as the operator should read it when it is the bound above running out (55P03): what
 * waited, for how long, the sessions holding the pool's tables against inserts (read on `c`, out
 * of any failed transaction), and what to do. Any other error is returned as it is.
 */
export async function lockWaitError(
  err: unknown,
  c: Q,
  at: { schema: string; shard: string; ms: number; code: ErrorCode; what: string; longer?: string; anyLock?: boolean },
): Promise<unknown> {
  if (!isLockTimeout(err)) return err;
  // DDL (CREATE POLICY) waits for every lock on the table, a reader's too; inserts only for SHARE and stronger.
  const holders = await tableLockHolders(c, at.schema, at.anyLock ? undefined : BLOCKS_INSERTS);
  return new TenantctlError(
    at.code,
    `${at.what} waited ${at.ms / 1000} s for a lock on ${at.shard}'s pool tables (${at.schema}) that another session holds${holders || ' (a row lock, or a session tenantctl may not see)'}, and stopped there`,
    `ask the session named to end its transaction (pg_terminate_backend(pid) as its owner or a superuser), then run the command again${at.longer ? `; ${at.longer}` : ''}`,
    undefined,
    { cause: err },
  );
}
