import { CATALOG_POOL_SIZE, CONNECT_TIMEOUT_MS, MIN_SHARD_CONNECTIONS } from '../config/connection-limits.js';
import { AsyncLocalStorage } from 'node:async_hooks';
import pg from 'pg';
import { redactText } from '../config/redact.js';
import type { Shard } from '../config/types.js';
import { EXIT, TenantctlError } from '../errors.js';
import { databaseUrl } from './connection-url.js';
import { shardPlace, watchConnection } from '../connection-loss.js';
import { isLoginRefused } from '../sql.js';

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
  /** A slot for a connection another program opens (pg_dump): counted, never opened here. */
  slot?: boolean;
  /** Where the caller waits: its chain of holders decides whether anyone can ever serve it. */
  at: Holder;
  /** Who holds the connection once it is given. */
  owner: Holder;
  resolve: (c: ShardClient) => void;
  reject: (e: unknown) => void;
}

/**
 * Who holds a connection: the body of one `Fleet.withClient` (or the code that called `acquire`
 * directly), inside its caller's holder. A connection held by a holder that is, or encloses, a
 * caller waiting on the same shard cannot come back before that caller is served.
 */
export interface Holder {
  readonly parent?: Holder;
}

const ROOT: Holder = {};
const holders = new AsyncLocalStorage<Holder>();

/** The holder the current code runs in. */
export function currentHolder(): Holder {
  return holders.getStore() ?? ROOT;
}

/**
 * How many bodies ran as a holder (asHolder) in this process: the first one makes Node 20 run a
 * hook for every promise of the process from then on (AsyncLocalStorage), which is why the hot
 * paths of a run over thousands of targets use Fleet.withLeafClient instead.
 */
export let holderEntries = 0;

/** Run fn as a new holder inside the current one (what Fleet.withClient does with its body). */
export function asHolder<T>(holder: Holder, fn: () => Promise<T>): Promise<T> {
  holderEntries++;
  return holders.run(holder, fn);
}

function encloses(outer: Holder, inner: Holder): boolean {
  for (let h: Holder | undefined = inner; h; h = h.parent) if (h === outer) return true;
  return false;
}

// Kept importable from here; defined in src/config/connection-limits.ts.
export { CONNECT_TIMEOUT_MS };

export class ShardConnections {
  private idle = new Map<string, ShardClient[]>();
  private open = 0;
  private peak = 0;
  private waiters: Waiter[] = [];
  private closed = false;
  /** The holder of each connection in use (not idle). */
  private held = new Map<ShardClient, Holder>();
  /** The holder of each reserved slot (reserveSlot): open, but by another program. */
  private slots = new Map<object, Holder>();

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

  /**
   * A connection to `database`, waiting while the budget is in use. `owner` holds it (by default
   * the caller's holder). A wait that can never end fails at once with SHARD_BUDGET_DEADLOCK:
   * every connection of the shard is held by the waiting callers themselves (e.g. a body of
   * withClient asking for a second connection to the same shard with a budget of 1).
   */
  async acquire(database: string, owner: Holder = currentHolder()): Promise<ShardClient> {
    if (this.closed) throw new Error(`connections to shard ${this.shard.name} are closed`);
    const reuse = this.idle.get(database)?.pop();
    if (reuse) return this.hold(reuse, owner);
    if (this.open < this.budget) return this.hold(await this.connect(database), owner);
    if (this.evictIdle()) return this.hold(await this.connect(database), owner);
    return new Promise((resolve, reject) => {
      this.waiters.push({ database, at: currentHolder(), owner, resolve, reject });
      this.failDeadlocked();
    });
  }

  /**
   * A connection to `database` only when one is free within the budget right now (idle, unopened,
   * or an idle one to another database closed for it); never waits. For work that may also run on
   * fewer connections (a move's parallel index builds), so it never takes a slot someone waits for.
   */
  async tryAcquire(database: string, owner: Holder = currentHolder()): Promise<ShardClient | undefined> {
    if (this.closed || this.waiters.length > 0) return undefined;
    const reuse = this.idle.get(database)?.pop();
    if (reuse) return this.hold(reuse, owner);
    if (this.open < this.budget || this.evictIdle()) return this.hold(await this.connect(database), owner);
    return undefined;
  }

  /**
   * One connection of the budget for another program that connects to the shard itself (the
   * pg_dump of a backup), without opening it here: waits like acquire (an idle connection is
   * closed to make room), and returns the function that gives the slot back. Without it, a
   * fan-out of backups held its budget in pooled connections plus one pg_dump each, above the
   * shard's maxConnections (the 8-shard bench saw 12 of 10).
   */
  async reserveSlot(owner: Holder = currentHolder()): Promise<() => void> {
    if (this.closed) throw new Error(`connections to shard ${this.shard.name} are closed`);
    if (!(this.open < this.budget || this.evictIdle())) {
      await new Promise<ShardClient>((resolve, reject) => {
        this.waiters.push({ database: '', slot: true, at: currentHolder(), owner, resolve, reject });
        this.failDeadlocked();
      });
    } else {
      this.countOpen();
    }
    const token = {};
    this.slots.set(token, owner);
    let given = false;
    return () => {
      if (given) return;
      given = true;
      this.slots.delete(token);
      this.open--;
      this.serveWaiter();
    };
  }

  private countOpen(): void {
    this.open++;
    this.peak = Math.max(this.peak, this.open);
  }

  private hold(client: ShardClient, owner: Holder): ShardClient {
    this.held.set(client, owner);
    // A connection opened while a caller began to wait may complete the circle (its holder
    // encloses that caller): check again now that it is held.
    if (this.waiters.length > 0) this.failDeadlocked();
    return client;
  }

  /**
   * Reject the waiters that can never be served: when every open connection is in use (none idle,
   * none being opened) and each is held by a waiter or one of its enclosing holders, no
   * connection will ever be released. No timer: a waiter behind connections that other work will
   * release (a fan-out over a long migration) may wait as long as that work takes.
   */
  private failDeadlocked(): void {
    if (this.held.size + this.slots.size < this.open) return;
    const holders = [...this.held.values(), ...this.slots.values()];
    const stuck = (h: Holder) => this.waiters.some((w) => encloses(h, w.at));
    if (!holders.every(stuck)) return;
    const holding = this.waiters.filter((w) => holders.some((h) => encloses(h, w.at)));
    this.waiters = this.waiters.filter((w) => !holding.includes(w));
    for (const w of holding) w.reject(budgetDeadlock(this.shard, this.budget, this.open));
  }

  release(client: ShardClient): void {
    this.held.delete(client);
    if (client.tenantctlBroken || this.closed) {
      this.drop(client);
      this.serveWaiter();
      return;
    }
    const db = client.tenantctlDatabase;
    const same = this.waiters.findIndex((w) => !w.slot && w.database === db);
    if (same >= 0) {
      const w = this.waiters.splice(same, 1)[0];
      w.resolve(this.hold(client, w.owner));
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
    if (w.slot) {
      this.countOpen();
      w.resolve(undefined as unknown as ShardClient);
      return;
    }
    this.connect(w.database).then((c) => w.resolve(this.hold(c, w.owner)), w.reject);
  }

  private async connect(database: string): Promise<ShardClient> {
    this.countOpen();
    const client = new pg.Client({
      connectionString: databaseUrl(this.shard.url, database),
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
      application_name: 'tenantctl',
      // A tenant may lock its own tables (its role may UPDATE them) and keep the transaction open:
      // no statement of tenantctl's waits for that without end. Each step that waits on purpose
      // sets its own bound (migrations' lockTimeout, fences, loads); this is the rest's.
      lock_timeout: SESSION_LOCK_WAIT_MS,
    }) as ShardClient;
    client.tenantctlDatabase = database;
    // A connection that dies (server stopped or restarted), idle or in use, must not crash the
    // process: it is marked broken (closed on release) and its errors name this shard.
    watchConnection(client, shardPlace(this.shard.name, this.shard.url, database), () => {
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

/** How long any statement of tenantctl waits for a lock no step bounded itself (the session's lock_timeout). */
export const SESSION_LOCK_WAIT_MS = 60_000;

/**
 * The error of a wait that can never end: the process holds every connection of the shard and
 * asks for one more. The config check (src/config/fleet-checks.ts) keeps budgets above what one
 * tenant operation needs, so this names the fix there.
 */
export function budgetDeadlock(shard: Shard, budget: number, open: number): TenantctlError {
  return new TenantctlError(
    'SHARD_BUDGET_DEADLOCK',
    `shard ${shard.name} has a connection budget of ${budget} (maxConnections ${shard.maxConnections}); this command holds all ${open} and needs one more on the same shard, which would wait forever`,
    `raise regions.<region>.shards.${shard.name}.maxConnections to ${MIN_SHARD_CONNECTIONS} or more (${MIN_SHARD_CONNECTIONS} plus the catalog's ${CATALOG_POOL_SIZE} on the catalog's shard)`,
    EXIT.usage,
  );
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
      : isLoginRefused(err)
        ? `the server answered and refused the login: check the user and password in shard ${shard.name}'s url (or the environment variable it names) and pg_hba.conf`
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
