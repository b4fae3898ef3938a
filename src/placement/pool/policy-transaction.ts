import type { Fleet } from '../../fleet/fleet.js';
import type { ShardClient } from '../../fleet/shard-connections.js';
import { isLockTimeout, lockWaitError } from '../../copy/load-lock-wait.js';

/** deadlock_detected: PostgreSQL rolled the whole transaction back, so running it again is safe. */
const DEADLOCK = '40P01';
/** Attempts in all; a deadlock needs another transaction in the same window each time. */
const ATTEMPTS = 5;

/**
 * One transaction that sets up the pool's write policies (fence, switch fence, suspension), run
 * again when PostgreSQL chose it as a deadlock's victim. CREATE POLICY takes an exclusive lock on
 * each shared table in turn, while another tenant's delete or load holds row locks on them in
 * its own order (children before parents); the setups themselves are serialised by one advisory
 * lock, but those other writers cannot be. The setup is idempotent and the victim was rolled back
 * whole, so retrying is what PostgreSQL's documentation advises. Lock timeouts are not retried:
 * they mean a long transaction holds a table, and the caller reports that.
 */
export async function withPoolPolicyTransaction<T>(
  fleet: Pick<Fleet, 'withTransaction'>,
  shard: string,
  database: string,
  fn: (c: ShardClient) => Promise<T>,
  sleep: (ms: number) => Promise<void> = (ms) => new Promise((r) => setTimeout(r, ms)),
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fleet.withTransaction(shard, database, fn);
    } catch (err) {
      if ((err as { code?: string }).code !== DEADLOCK || attempt >= ATTEMPTS) throw err;
      // Jittered, so two victims of one another do not meet again at once.
      await sleep(50 * attempt + Math.floor(Math.random() * 100));
    }
  }
}

/** One try's wait for the shared tables' lock: what every pool query queues behind while CREATE POLICY waits. */
export const POLICY_LOCK_TRY_MS = 1000;

/**
 * The pool's write-policy setup (withPoolPolicyTransaction) when it may have DDL to do: each try
 * waits at most POLICY_LOCK_TRY_MS for the shared tables' locks, then steps aside and tries again
 * until `waitMs`. CREATE POLICY queues for an exclusive lock, and every query of every tenant on
 * that table queues behind it: a neighbour's open transaction (a tenant may lock its pool tables,
 * or just leave a SELECT open) would otherwise stall the whole pool for as long as it likes.
 * Past `waitMs`: LOCKED (exit 3), naming the sessions holding the pool's tables.
 */
export async function withPolicyDdl<T>(
  fleet: Pick<Fleet, 'withTransaction' | 'withClient'>,
  at: { shard: string; database: string; schema: string },
  what: string,
  waitMs: number,
  fn: (c: ShardClient) => Promise<T>,
): Promise<T> {
  const until = Date.now() + waitMs;
  for (;;) {
    try {
      return await withPoolPolicyTransaction(fleet, at.shard, at.database, async (c) => {
        await c.query(`set local lock_timeout = ${POLICY_LOCK_TRY_MS}`);
        return fn(c);
      });
    } catch (err) {
      if (!isLockTimeout(err)) throw err;
      if (Date.now() + POLICY_LOCK_TRY_MS >= until) {
        throw await fleet.withClient(at.shard, at.database, (c) =>
          lockWaitError(err, c, { schema: at.schema, shard: at.shard, ms: waitMs, code: 'LOCKED', what, anyLock: true }),
        );
      }
      await new Promise((r) => setTimeout(r, 250 + Math.floor(Math.random() * 250)));
    }
  }
}
