import pg from 'pg';
import type { ShardClient } from '../fleet/shard-connections.js';
import { CONNECT_TIMEOUT_MS } from '../config/connection-limits.js';

/** How often the sweep runs while the statement waits. */
const SWEEP_EVERY_MS = 100;
/** The longest one statement of the sweep may wait or run (ending a session waits up to 10 s for it). */
const SWEEP_STATEMENT_MS = 15_000;

/**
 * Run `work` (a statement on `c` that waits for a lock: ALTER ROLE … NOLOGIN, DROP ROLE, DROP
 * DATABASE) while a second connection, opened with `c`'s parameters, runs `sweep` (ending the
 * sessions that hold or want that lock) every 100 ms until `work` settles.
 *
 * Ending the holders first and then running the statement lost to a tenant that reconnects in a
 * loop: its next session took the lock again between the two (15 sessions kept a role from being
 * suspended; 9 kept a neighbour's database from being dropped). Once the statement is queued for
 * the lock, a session that asks for it later waits behind the statement, so ending the ones ahead
 * of it, again and again, lets it through. One connection more, for as long as the wait lasts.
 */
export async function whileSweeping<T>(c: pg.ClientBase, work: () => Promise<T>, sweep: (s: ShardClient) => Promise<unknown>): Promise<T> {
  const p = (c as unknown as { connectionParameters: pg.ClientConfig }).connectionParameters;
  const s = new pg.Client({
    host: p.host,
    port: p.port,
    user: p.user,
    password: p.password,
    database: p.database,
    ssl: p.ssl,
    application_name: 'tenantctl sweep',
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    // A sweep statement never waits long: the statement it serves must not wait for it.
    lock_timeout: SWEEP_STATEMENT_MS,
    statement_timeout: SWEEP_STATEMENT_MS,
  });
  s.on('error', () => undefined);
  let done = false;
  let wake: () => void = () => undefined;
  const loop = (async () => {
    if (
      !(await s.connect().then(
        () => true,
        () => false,
      ))
    )
      return;
    while (!done) {
      await sweep(s as ShardClient).catch(() => undefined);
      await new Promise<void>((resolve) => {
        wake = resolve;
        setTimeout(resolve, SWEEP_EVERY_MS);
      });
    }
  })();
  try {
    return await work();
  } finally {
    done = true;
    wake();
    // The loop first: a client ended while it connects never settles its connect (node-postgres
    // calls no callback for an end it was asked for), and the loop would wait on it for good. Its
    // connect is bounded by connectionTimeoutMillis, a sweep by its own statements' timeouts.
    await loop;
    await s.end().catch(() => undefined);
  }
}
