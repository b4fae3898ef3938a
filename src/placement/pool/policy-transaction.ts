import type { Fleet } from '../../fleet/fleet.js';
import type { ShardClient } from '../../fleet/shard-connections.js';

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
