import { isConnectionLoss } from '../connection-loss.js';
import type { Config, Shard } from '../config/types.js';
import { UsageError } from '../errors.js';
import { asHolder, currentHolder, ShardConnections, type ShardClient } from './shard-connections.js';
import { CATALOG_POOL_SIZE } from '../config/connection-limits.js';
import { nameLockHolders, waitedOut } from './lock-timeout-holders.js';
import { catalogShardName } from '../config/catalog-shard.js';

/**
 * All shards of the config, each behind its own connection budget. One Fleet per command;
 * close it at the end.
 *
 * @example
 *   const fleet = new Fleet(config);
 *   await fleet.withClient('us1', 'tenant_pool', (c) => c.query('select 1'));
 *   await fleet.close();
 */
export class Fleet {
  private conns = new Map<string, ShardConnections>();
  /**
   * `shard/database` pairs this process has seen exist (or created). Databases are not dropped
   * behind a running command's back except by that command, which forgets them, so checking once
   * per process spares a connection to the maintenance database per tenant in bulk runs.
   */
  readonly knownDatabases = new Set<string>();
  /** Shards this process has reached at least once. */
  readonly reachedShards = new Set<string>();

  constructor(readonly config: Config) {}

  shard(name: string): Shard {
    const shard = this.config.shards.find((s) => s.name === name);
    if (!shard) {
      throw new UsageError('UNKNOWN_SHARD', `unknown shard "${name}"`, `use one of: ${this.config.shards.map((s) => s.name).join(', ')}`);
    }
    return shard;
  }

  connections(shardName: string): ShardConnections {
    let c = this.conns.get(shardName);
    if (!c) {
      const shard = this.shard(shardName);
      // The catalog's own pool lives on one shard too; keep the sum within that shard's budget
      // (the config loader refuses a budget too small for both).
      const budget =
        catalogShardName(this.config, this.config.shards) === shard.name
          ? Math.max(1, shard.maxConnections - CATALOG_POOL_SIZE)
          : shard.maxConnections;
      c = new ShardConnections(shard, budget);
      this.conns.set(shardName, c);
    }
    return c;
  }

  /** Run fn with a connection to (shard, database), released afterwards. */
  withClient<T>(shardName: string, database: string, fn: (c: ShardClient) => Promise<T>): Promise<T> {
    // fn's body holds the connection: a nested withClient on the same shard waits from inside it,
    // so ShardConnections can tell a wait that could never end (see acquire).
    return this.held(shardName, database, true, fn);
  }

  /**
   * withClient for a body that takes no other connection of the fleet (a statement or a message on
   * `c`, nothing nested): the connection is held as the caller's, and the body does not run as a
   * holder of its own, which only a nested withClient needs (to tell a wait that can never end).
   * Entering a holder costs the whole process: once any body runs as one, Node 20 runs a hook for
   * every promise made after it (AsyncLocalStorage), 60–70 ms of a 5,000-target `migrate up`'s
   * 1.5 s of CPU here (bench/README.md). The state read, the tracking-table check, the shared
   * messages and a target's own connection in `migrate up` use it. A body that does nest must use
   * withClient: nested here, its wait would not be recognised as one that can never end.
   */
  withLeafClient<T>(shardName: string, database: string, fn: (c: ShardClient) => Promise<T>): Promise<T> {
    return this.held(shardName, database, false, fn);
  }

  /** A connection held by a holder inside the caller's; fn runs as that holder only when `enter`. */
  private async held<T>(shardName: string, database: string, enter: boolean, fn: (c: ShardClient) => Promise<T>): Promise<T> {
    const conns = this.connections(shardName);
    const holder = { parent: currentHolder() };
    const client = await conns.acquire(database, holder);
    try {
      return await (enter ? asHolder(holder, () => fn(client)) : fn(client));
    } catch (err) {
      // A failed statement leaves the connection usable, but a lost connection does not.
      if (isConnectionError(err)) client.tenantctlBroken = true;
      if (waitedOut(err)) await nameLockHolders(conns, database, err as Error);
      throw err;
    } finally {
      conns.release(client);
    }
  }

  /**
   * Run fn with up to `max` more connections to (shard, database), as many as the budget has free
   * now (maybe none: fn must manage with what it gets); all released afterwards.
   */
  async withSpareClients<T>(shardName: string, database: string, max: number, fn: (cs: ShardClient[]) => Promise<T>): Promise<T> {
    const conns = this.connections(shardName);
    const got: ShardClient[] = [];
    try {
      for (let i = 0; i < max; i++) {
        const c = await conns.tryAcquire(database);
        if (!c) break;
        got.push(c);
      }
      return await fn(got);
    } catch (err) {
      // Which one was lost is not known here: close them all rather than keep a broken one.
      if (isConnectionError(err)) for (const c of got) c.tenantctlBroken = true;
      throw err;
    } finally {
      for (const c of got) conns.release(c);
    }
  }

  /** Run fn inside one transaction on (shard, database); rolled back if fn throws. */
  async withTransaction<T>(shardName: string, database: string, fn: (c: ShardClient) => Promise<T>): Promise<T> {
    return this.withClient(shardName, database, (c) => inTransaction(c, fn));
  }

  /**
   * Fail fast, and before anything is recorded, when a shard cannot be reached; once per shard per
   * process.
   */
  async assertReachable(shardName: string, database: string): Promise<void> {
    if (this.reachedShards.has(shardName)) return;
    await this.withClient(shardName, database, (c) => c.query('select 1'));
    this.reachedShards.add(shardName);
  }

  /** The highest number of connections open at once to each shard (for tests and benchmarks). */
  peaks(): Record<string, number> {
    return Object.fromEntries([...this.conns].map(([k, v]) => [k, v.peakOpen]));
  }

  async close(): Promise<void> {
    await Promise.all([...this.conns.values()].map((c) => c.close()));
    this.conns.clear();
  }
}

/**
 * fn between begin and commit on the client; rollback if it throws (a client that cannot roll
 * back is marked broken, so its pool drops it).
 */
export async function inTransaction<T, C extends Pick<ShardClient, 'query'> & { tenantctlBroken?: boolean } = ShardClient>(
  c: C,
  fn: (c: C) => Promise<T>,
): Promise<T> {
  await c.query('begin');
  try {
    const out = await fn(c);
    await c.query('commit');
    return out;
  } catch (err) {
    await c.query('rollback').catch(() => {
      c.tenantctlBroken = true;
    });
    throw err;
  }
}

export function isConnectionError(err: unknown): boolean {
  // One list of what means "the session is gone" (a terminated backend, a shard stopped mid-run,
  // pg's "not queryable" for a client whose socket died): src/connection-loss.ts.
  return isConnectionLoss(err);
}
