import type pg from 'pg';
import { Writable, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { from as copyFrom, to as copyTo } from 'pg-copy-streams';
import type { Config } from '../config/types.js';
import { copyOutSql } from './copy-sql.js';
import { RowTap, type TableDigest } from './row-tap.js';
import type { CopyScope, CopyTable } from './tables.js';

/** COPY … TO STDOUT as a readable stream of COPY text (backpressure reaches the server). */
export function copyOut(client: pg.ClientBase, sql: string): Readable {
  return client.query(copyTo(sql));
}

/** COPY … FROM STDIN as a writable stream; it finishes when the server has taken every row. */
export function copyIn(client: pg.ClientBase, sql: string): Writable {
  return client.query(copyFrom(sql));
}

/** Discards what it is given (a hash-only read). */
function sink(): Writable {
  return new Writable({ write: (_c, _e, cb) => cb() });
}

/**
 * Read a table's rows in the scope and measure them the way a backup does: what a restore (or a
 * move) compares against the manifest after loading, on the same connection and transaction.
 *
 * @example
 *   const d = await digestTable(client, table, { model: 'pool', schema: 'app', key }, config);
 *   d.hash === manifest.tables[0].hash
 */
export async function digestTable(
  client: pg.ClientBase,
  t: CopyTable,
  scope: CopyScope,
  config: Pick<Config, 'tenantKey'>,
): Promise<TableDigest> {
  // Row count and row hash are what read-backs compare; no SHA-256 of bytes nobody keeps.
  const tap = new RowTap({ keyIndex: t.keyIndex, sha256: false });
  await pipeline(copyOut(client, copyOutSql(t, scope, config)), tap, sink());
  return tap.digest();
}
