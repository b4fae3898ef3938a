import { CONNECT_TIMEOUT_MS } from '../config/connection-limits.js';
import pg from 'pg';
import { redactText } from '../config/redact.js';
import type { Shard } from '../config/types.js';
import { EXIT, TenantctlError } from '../errors.js';
import { databaseUrl } from './connection-url.js';

/**
 * Every connection tenantctl holds to one shard, across all of its databases, kept within the
 * shard's connection budget. pg.Pool is per database, so one pool per database could exceed the
 * shard's budget; this pools per shard instead: an idle connection to one database is reused for
 * that database, closed to make room for another database when the budget is reached, and
 * callers wait beyond that.
 *
 * @example
 *   const conns = new ShardConnections(shard);
 *   const client = await conns.acquire('tenant_schemas');
 *   try { await client.query('select 1'); } finally { conns.release(client); }
 */
export interface ShardClient extends pg.Client {
  /** The database this connection is open on. */
  tenantctlDatabase: string;
  /** Set when the connection failed; it is closed on release instead of reused. */
  tenantctlBroken?: boolean;
}

interface Waiter {
  database: string;
  resolve: (c: ShardClient) => void;
  reject: (e: unknown) => void;
}

// Kept importable from here; defined in src/config/connection-limits.ts.
export { CONNECT_TIMEOUT_MS };

export class ShardConnections {
  private idle = new Map<string, ShardClient[]>();
  private open = 0;
  private peak = 0;
  private waiters: Waiter[] = [];
  private closed = false;

  constructor(
    readonly shard: Shard,
    readonly budget: number = shard.maxConnections,
  ) {}

  /** The most connections this process ever had open to the shard at once. */
  get peakOpen(): number {
    return this.peak;
  }

  get openCount(): number {
    return this.open;
  }

  async acquire(database: string): Promise<ShardClient> {
    if (this.closed) throw new Error(`connections to shard ${this.shard.name} are closed`);
    const reuse = this.idle.get(database)?.pop();
    if (reuse) return reuse;
    if (this.open < this.budget) return this.connect(database);
    if (this.evictIdle()) return this.connect(database);
    return new Promise((resolve, reject) => this.waiters.push({ database, resolve, reject }));
  }

  release(client: ShardClient): void {
    if (client.tenantctlBroken || this.closed) {
      this.drop(client);
      this.serveWaiter();
      return;
    }
    const db = client.tenantctlDatabase;
    const same = this.waiters.findIndex((w) => w.database === db);
    if (same >= 0) {
      this.waiters.splice(same, 1)[0].resolve(client);
      return;
    }
    if (this.waiters.length > 0) {
      // Someone waits for another database: give them this connection's slot.
      this.drop(client);
      this.serveWaiter();
      return;
    }
    const list = this.idle.get(db) ?? [];
    list.push(client);
    this.idle.set(db, list);
  }

  /** Close idle connections to one database (before it is dropped). */
  async closeIdle(database: string): Promise<void> {
    const list = this.idle.get(database) ?? [];
    this.idle.delete(database);
    this.open -= list.length;
    await Promise.all(list.map((c) => c.end().catch(() => undefined)));
    for (let i = 0; i < list.length; i++) this.serveWaiter();
  }

  /** Close every connection; pending waiters are rejected. */
  async close(): Promise<void> {
    this.closed = true;
    for (const w of this.waiters.splice(0)) w.reject(new Error(`shard ${this.shard.name} connections closed`));
    const all = [...this.idle.values()].flat();
    this.idle.clear();
    this.open -= all.length;
    await Promise.all(all.map((c) => c.end().catch(() => undefined)));
  }

  private evictIdle(): boolean {
    for (const list of this.idle.values()) {
      const victim = list.pop();
      if (victim) {
        this.drop(victim);
        return true;
      }
    }
    return false;
  }

  private drop(client: ShardClient): void {
    this.open--;
    client.end().catch(() => undefined);
  }

  private serveWaiter(): void {
    const w = this.waiters.shift();
    if (!w) return;
    this.connect(w.database).then(w.resolve, w.reject);
  }

  private async connect(database: string): Promise<ShardClient> {
    this.open++;
    this.peak = Math.max(this.peak, this.open);
    const client = new pg.Client({
      connectionString: databaseUrl(this.shard.url, database),
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
      application_name: 'tenantctl',
    }) as ShardClient;
    client.tenantctlDatabase = database;
    // An idle connection that dies (server restart) must not crash the process.
    client.on('error', () => {
      client.tenantctlBroken = true;
    });
    try {
      await client.connect();
      return client;
    } catch (err) {
      this.open--;
      client.end().catch(() => undefined);
      this.serveWaiter();
      throw unreachable(this.shard, database, err);
    }
  }
}

/** A connection failure that names the shard and database, never the password. */
export function unreachable(shard: Shard, database: string, err: unknown): TenantctlError {
  const u = new URL(shard.url);
  const raw = err instanceof Error ? err.message : String(err);
  const detail = /timeout expired/i.test(raw)
    ? `no answer within ${CONNECT_TIMEOUT_MS} ms (connection timed out)`
    : redactText(raw) || 'connection failed';
  const code = (err as { code?: string })?.code;
  const hint =
    code === '3D000'
      ? `the database does not exist on shard ${shard.name}`
      : `check that shard ${shard.name} is running (tenantctl dev up for embedded shards) and its url in the config`;
  // Exit 2 when it ends a command: nothing was changed, and the fix is in the config or the
  // server. Inside a fan-out it becomes that target's failed result instead.
  return new TenantctlError(
    'UNREACHABLE',
    `shard ${shard.name} (${u.hostname}:${u.port || 5432}/${database}) is unreachable: ${detail}`,
    hint,
    EXIT.usage,
    { cause: err },
  );
}
