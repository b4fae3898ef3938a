import { pipeline } from 'node:stream/promises';
import type pg from 'pg';
import type { Config } from '../config/types.js';
import type { ShardClient } from '../fleet/shard-connections.js';
import { copyInSql, copyOutSql } from '../copy/copy-sql.js';
import { copyIn, copyOut } from '../copy/streams.js';
import { RowTap } from '../copy/row-tap.js';
import { BinaryRowCount } from '../copy/binary-rows.js';
import type { sourceConstraints } from '../copy/not-valid-constraints.js';
import type { CopyScope, CopyTable } from '../copy/tables.js';
import type { CopyPart } from '../copy/copy-sql.js';
import type { MovePlan } from './plan.js';

export interface CopyHooks {
  /** Called with rows and bytes streamed so far. */
  onProgress?(p: { table: string; rows: number; bytes: number }): void;
  /** After a table is loaded (phase bookkeeping, tests' kill points). */
  afterTable?(table: string): Promise<void>;
  /** Every table's rows are in; the deferred indexes, keys and foreign keys are built next (the `rebuild` phase). */
  loaded?(): Promise<void>;
  /**
   * Everything is loaded and built at the target, before verification (the tests' tamper point);
   * `measured`: the target's rows were already measured, table by table (beforeTargetDigest).
   */
  beforeVerify?(target: pg.ClientBase, schema: string, tables: CopyTable[], o?: { measured: boolean }): Promise<void>;
  /**
   * A new placement loaded table by table (fresh-parallel.ts) measures each table at the target
   * as soon as it is built, long before beforeVerify: the tests' tamper point for that path,
   * called with the connection that measures it next.
   */
  beforeTargetDigest?(target: pg.ClientBase, schema: string, table: CopyTable): Promise<void>;
}

/** One copy's fixed parts: both ends, the source's snapshot, the hooks. */
export interface CopyRun {
  config: Config;
  plan: MovePlan;
  source: pg.ClientBase;
  tables: CopyTable[];
  hooks: CopyHooks;
  srcScope: CopyScope;
  dstScope: CopyScope;
  rewriteKey?: string;
  constraints: Awaited<ReturnType<typeof sourceConstraints>>;
  /** How long a load into a pool waits for a lock another session holds on its tables (load-lock-wait.ts). */
  lockWaitMs: number;
  /** Tables streamed in COPY BINARY (binary-copy.ts: the same built-in column types at both ends); the rest as text. */
  binary?: Set<string>;
}

/**
 * One table's rows and bytes streamed; `parts`: in how many parts at once it was loaded
 * (pool-split.ts), when split; `format`: 'binary' when it went as COPY BINARY (binary-copy.ts).
 */
export type Streamed = { table: string; rows: number; bytes: number; parts?: number; format?: 'binary' };

/**
 * One table's rows: COPY out of `source` → RowTap (counts rows, writes a pool target's key) → COPY
 * in to `target`; `progress` is told the rows and bytes so far every half second. With `part`,
 * only that part of the tenant's rows (pool-split.ts). `sourceRead` is called once the source
 * has sent its last row, while the target may still be checking them (pool-split.ts measures
 * the source's side of the verification then).
 */
export async function copyTable(
  run: CopyRun,
  ends: { source: pg.ClientBase; target: pg.ClientBase },
  tb: CopyTable,
  freeze: boolean,
  progress?: (p: { rows: number; bytes: number }) => void,
  part?: CopyPart,
  sourceRead?: () => void,
): Promise<Streamed> {
  // A move proves itself by the read-back row hashes on both sides, not by a checksum of the stream.
  // A key to write into each row needs the text format (RowTap); binary only counts the rows.
  const binary = !run.rewriteKey && Boolean(run.binary?.has(tb.table));
  const tap = binary
    ? new BinaryRowCount()
    : new RowTap({ keyIndex: tb.keyIndex, rewriteKey: run.rewriteKey, sha256: false, rowHash: false });
  const timer = progress ? setInterval(() => progress({ rows: tap.rowCount, bytes: tap.digest().bytes }), 500) : undefined;
  const out = copyOut(ends.source, copyOutSql(tb, run.srcScope, run.config, part, { binary }));
  if (sourceRead) out.once('end', sourceRead);
  try {
    await pipeline(out, tap, copyIn(ends.target, copyInSql(tb, run.plan.to.schema, { freeze, binary })));
  } catch (err) {
    if (!out.readableEnded) severSource(ends.source);
    throw err;
  } finally {
    if (timer) clearInterval(timer);
  }
  const d = tap.digest();
  return { table: tb.table, rows: d.rows, bytes: d.bytes, ...(binary ? { format: 'binary' as const } : {}) };
}

/**
 * The load failed while the source was still sending (a lock wait that ran out at the target,
 * a row the target refused): the destroyed COPY-out stream leaves the rest of the server's
 * answer unread on the connection, so its next query (the snapshot's rollback) would wait
 * forever. The connection is closed instead: the server rolls the read-only transaction back,
 * and the pool drops the client on release (tenantctlBroken).
 */
function severSource(source: pg.ClientBase): void {
  (source as Partial<ShardClient>).tenantctlBroken = true;
  (source as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream?.destroy();
}

/** Each table COPY out → RowTap → COPY in, in foreign-key order; `loaded` once the last is in. */
export async function streamTables(run: CopyRun, t: ShardClient, o: { frozen?: Set<string> } = {}): Promise<Streamed[]> {
  const { source, hooks } = run;
  const streamed: Streamed[] = [];
  let rowsBefore = 0;
  let bytesBefore = 0;
  const copy = (tb: CopyTable, freeze: boolean): Promise<Streamed> =>
    copyTable(
      run,
      { source, target: t },
      tb,
      freeze,
      hooks.onProgress && ((p) => hooks.onProgress!({ table: tb.table, rows: rowsBefore + p.rows, bytes: bytesBefore + p.bytes })),
    );
  for (const tb of run.tables) {
    const s = await copy(tb, Boolean(o.frozen?.has(tb.table)));
    rowsBefore += s.rows;
    bytesBefore += s.bytes;
    streamed.push(s);
    hooks.onProgress?.({ table: tb.table, rows: rowsBefore, bytes: bytesBefore });
    await hooks.afterTable?.(tb.table);
  }
  await hooks.loaded?.();
  return streamed;
}
