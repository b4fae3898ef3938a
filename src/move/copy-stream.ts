import { pipeline } from 'node:stream/promises';
import type pg from 'pg';
import type { Config } from '../config/types.js';
import type { ShardClient } from '../fleet/shard-connections.js';
import { copyInSql, copyOutSql } from '../copy/copy-sql.js';
import { copyIn, copyOut } from '../copy/streams.js';
import { RowTap } from '../copy/row-tap.js';
import type { sourceConstraints } from '../copy/not-valid-constraints.js';
import type { CopyScope, CopyTable } from '../copy/tables.js';
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
}

export type Streamed = { table: string; rows: number; bytes: number };

/**
 * How one table's copy is run: by default as it comes (inside the caller's transaction, frozen
 * when `frozen` says so); a table-by-table load wraps it in its own transaction.
 */
export type EachTable = (tb: CopyTable, copy: (freeze: boolean) => Promise<Streamed>) => Promise<Streamed>;

/** Each table COPY out → RowTap → COPY in, in foreign-key order; `loaded` once the last is in. */
export async function streamTables(run: CopyRun, t: ShardClient, o: { frozen?: Set<string>; each?: EachTable } = {}): Promise<Streamed[]> {
  const { source, config, hooks } = run;
  const streamed: Streamed[] = [];
  let rowsBefore = 0;
  let bytesBefore = 0;
  const copy = async (tb: CopyTable, freeze: boolean): Promise<Streamed> => {
    // A move proves itself by the read-back row hashes on both sides, not by a checksum of the stream.
    const tap = new RowTap({ keyIndex: tb.keyIndex, rewriteKey: run.rewriteKey, sha256: false, rowHash: false });
    const timer = hooks.onProgress
      ? setInterval(
          () => hooks.onProgress!({ table: tb.table, rows: rowsBefore + tap.rowCount, bytes: bytesBefore + tap.digest().bytes }),
          500,
        )
      : undefined;
    try {
      await pipeline(copyOut(source, copyOutSql(tb, run.srcScope, config)), tap, copyIn(t, copyInSql(tb, run.plan.to.schema, { freeze })));
    } finally {
      if (timer) clearInterval(timer);
    }
    const d = tap.digest();
    return { table: tb.table, rows: d.rows, bytes: d.bytes };
  };
  const each: EachTable = o.each ?? ((tb, go) => go(Boolean(o.frozen?.has(tb.table))));
  for (const tb of run.tables) {
    const s = await each(tb, (freeze) => copy(tb, freeze));
    rowsBefore += s.rows;
    bytesBefore += s.bytes;
    streamed.push(s);
    hooks.onProgress?.({ table: tb.table, rows: rowsBefore, bytes: bytesBefore });
    await hooks.afterTable?.(tb.table);
  }
  await hooks.loaded?.();
  return streamed;
}
