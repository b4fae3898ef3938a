import type pg from 'pg';
import { redactText } from './config/redact.js';
import { errorMessage, TenantctlError } from './errors.js';

/**
 * A shard or the catalog that stops answering mid-command (stopped, restarted, failed over, the
 * network gone) is ONE clear error naming where the connection was lost, never pg's internals.
 *
 * Every pg client tenantctl opens goes through `watchConnection`: an 'error' listener for life
 * (pg emits 'error' on an idle or checked-out client whose server goes away, and an unheard
 * 'error' event ends the process with a stack), the place remembered as lost, and each promise
 * query's connection-loss error tagged with the place, so the error that reaches the top (or a
 * result row) can say "shard us1 (127.0.0.1:5432/tenant_pool)" instead of "Connection terminated
 * unexpectedly". Errors of streams (COPY, cursors) are not tagged; the places seen lost name them.
 */

/** SQLSTATEs and socket codes that mean the session is gone, not that a statement failed. */
const LOST_CODES = new Set(['57P01', '57P02', '57P03', 'ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENOTFOUND']);
const LOST_MESSAGE =
  /Connection terminated|not queryable|terminating connection|server closed the connection|the database system is (shutting down|starting up)|connection timeout/i;

const TAG = Symbol('tenantctl.lostAt');

/** Every client watchConnection was given whose socket is not closed yet (src/cli/prompt-exit.ts). */
const live = new Set<pg.Client>();

/** The pg clients of this process whose connection has not ended. */
export function liveClients(): pg.Client[] {
  return [...live];
}

/** Places (a shard, the catalog) whose connection this process saw lost, first first. */
const lostPlaces: string[] = [];

/** Whether err (or an error it wraps) means the connection to the server is gone. */
export function isConnectionLoss(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    if (e instanceof TenantctlError) return e.code === 'SHARD_LOST';
    const code = String((e as { code?: unknown }).code ?? '');
    if (code.startsWith('08') || LOST_CODES.has(code)) return true;
    if (LOST_MESSAGE.test(errorMessage(e))) return true;
  }
  return false;
}

/**
 * Listen to the client for life and tag its queries' connection-loss errors with `where`
 * (`shard us1 (host:port/database)`, `the catalog (…)`). Call before connect().
 */
export function watchConnection(client: pg.Client, where: string, onLost?: () => void): void {
  live.add(client);
  client.connection.stream.once('close', () => live.delete(client));
  client.on('error', (err) => {
    noteLost(where);
    onLost?.();
    void err;
  });
  client.on('end', () => {
    // An end this process asked for is not a loss; pg sets _ending before it closes.
    if (!(client as unknown as { _ending?: boolean })._ending) {
      noteLost(where);
      onLost?.();
    }
  });
  const query = client.query.bind(client) as (...args: unknown[]) => unknown;
  (client as unknown as { query: (...args: unknown[]) => unknown }).query = (...args: unknown[]) => {
    const r = query(...args);
    if (r && typeof (r as Promise<unknown>).then === 'function') {
      return (r as Promise<unknown>).catch((e: unknown) => {
        if (isConnectionLoss(e)) tagLost(e, where);
        throw e;
      });
    }
    return r;
  };
}

function noteLost(where: string): void {
  if (!lostPlaces.includes(where)) lostPlaces.push(where);
}

function tagLost(err: unknown, where: string): void {
  if (err && typeof err === 'object' && !(TAG in err)) {
    Object.defineProperty(err, TAG, { value: where, enumerable: false });
    noteLost(where);
  }
}

/** Where err's connection was lost: its tag, else the places this process saw lost. */
function lostWhere(err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const tag = e && typeof e === 'object' ? (e as Record<symbol, unknown>)[TAG] : undefined;
    if (typeof tag === 'string') return tag;
  }
  return lostPlaces.length > 0 ? lostPlaces.join(' and ') : undefined;
}

/**
 * The one error for a connection lost mid-command (exit 1, SHARD_LOST), naming where; undefined
 * when err is not a connection loss. `doing` says what was under way ("the move of acme").
 *
 * @example
 *   catch (err) { throw lostConnectionError(err, 'the move of acme') ?? err; }
 */
export function lostConnectionError(err: unknown, doing = 'the command'): TenantctlError | undefined {
  if (err instanceof TenantctlError && err.code === 'SHARD_LOST') return err;
  if (!isConnectionLoss(err)) return undefined;
  const where = lostWhere(err) ?? 'a shard';
  return new TenantctlError(
    'SHARD_LOST',
    `lost the connection to ${where} during ${doing}: ${redactText(rootMessage(err))}`,
    `start ${where.startsWith('the catalog') ? 'the catalog' : 'that shard'} again (tenantctl dev up for embedded shards), then run the same command again: it finishes or undoes what was left`,
    undefined,
    { cause: err },
  );
}

function rootMessage(err: unknown): string {
  let e: unknown = err;
  while ((e as { cause?: unknown })?.cause && !(e instanceof TenantctlError)) e = (e as { cause?: unknown }).cause;
  return errorMessage(e).split('\n')[0];
}

/** How a shard's connection is named in these errors. */
export function shardPlace(shardName: string, url: string, database: string): string {
  const u = new URL(url);
  return `shard ${shardName} (${u.hostname}:${u.port || 5432}/${database})`;
}
