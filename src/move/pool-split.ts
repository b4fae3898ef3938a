import type pg from 'pg';
import { inTransaction, type Fleet } from '../fleet/fleet.js';
import type { ShardClient } from '../fleet/shard-connections.js';
import { boundLockWait } from '../copy/load-lock-wait.js';
import { exportSnapshot, joinSnapshot } from '../copy/snapshot.js';
import { advanceSequences, sequenceValues } from '../copy/sequences.js';
import { poolLoadRole } from '../copy/pool-load-path.js';
import { checksByIndex } from '../copy/pool-load.js';
import { mayLoadInParts, partsPerTable } from '../copy/pool-load-split.js';
import type { CopyTable } from '../copy/tables.js';
import { faultPoint } from '../operations/fault-points.js';
import { copyTable, type CopyRun, type Streamed } from './copy-stream.js';
import { EarlySourceDigests } from './verify-early.js';
import type { TableCheck } from './verify-checks.js';

/** Load connections of a split load: the loading one and one more, when the target's budget has it. */
export const LOAD_PARTS = 2;

/**
 * The offline move into a pool whose role may not switch triggers off (every row's foreign keys
 * checked by PostgreSQL's referential triggers, one backend at 100% of a core): each big table's
 * rows in LOAD_PARTS parts (copy-sql.ts partCondition), each part read from the move's one source
 * snapshot on its own source connection and loaded on its own target connection in its own
 * transaction, the parts at once. A row's check needs its parents COMMITTED, so a table's parts
 * all commit before the next table starts (parents first, partsPerTable). No table lock is taken:
 * other tenants of the pool keep reading and writing, and the tenant's committed rows are seen by
 * nobody (row-level security by key; the catalog still points at the source). Each table's source
 * side is measured in the snapshot while the target still checks that table (verify-early.ts);
 * then the sequences, and the target's side on every load connection once every part has committed.
 *
 * Committed parts are the target's rows of the tenant: the move records `targetCreated` before
 * the copy, so a failure (MOVE_VERIFY included) and recoverMove after a kill delete them by key,
 * children first (removeEnd). Undefined, having changed nothing, when it does not apply (the role
 * may switch triggers off; rows breaking a NOT VALID constraint; no spare connection at either
 * end; tables that cannot commit in order): the caller loads in one transaction as before.
 */
export async function loadPoolInParts(run: CopyRun, fleet: Fleet, t: ShardClient): Promise<TableCheck[] | undefined> {
  const { plan, tables } = run;
  if (!mayLoadInParts(run.constraints) || (await poolLoadRole(t)).may) return undefined;
  return fleet.withSpareClients(plan.to.shard, plan.to.database, LOAD_PARTS - 1, (targets) =>
    fleet.withSpareClients(plan.from.shard, plan.from.database, targets.length, async (sources) => {
      if (!targets.length || sources.length < targets.length) return undefined;
      const joined: pg.ClientBase[] = [];
      let counting: Promise<void> | undefined;
      try {
        const id = await exportSnapshot(run.source);
        for (const c of sources) {
          // Listed first: one whose join fails is rolled back too before it goes back.
          joined.push(c);
          await joinSnapshot(c, id);
        }
        const lanes = { src: [run.source, ...joined], dst: [t, ...targets] };
        const parts = await partsPerTable(
          { target: t, source: joined[0] },
          plan.to.schema,
          tables,
          run.srcScope,
          run.config,
          lanes.dst.length,
        );
        if (!parts) return undefined;
        counting = parts.counted;
        return await loadAndVerifyParts(run, t, lanes, parts.of);
      } finally {
        // A load that failed early may leave a count running on the first joined connection.
        await counting;
        for (const c of joined) await c.query('rollback').catch(() => undefined);
      }
    }),
  );
}

/** Table after table, each in its parts at once; then sequences and verify on `t`. */
async function loadAndVerifyParts(
  run: CopyRun,
  t: ShardClient,
  lanes: { src: pg.ClientBase[]; dst: pg.ClientBase[] },
  partsOf: (table: number) => Promise<number>,
): Promise<TableCheck[]> {
  const { tables, hooks } = run;
  const schema = run.plan.to.schema;
  const streamed: Streamed[] = [];
  const done = { rows: 0, bytes: 0 };
  // Each table's source side measured in the snapshot while the target still checks its rows.
  const early = new EarlySourceDigests(run);
  try {
    for (const [i, tb] of tables.entries()) {
      const s = await loadTableInParts(run, lanes, tb, await partsOf(i), done, () => early.measureSource(lanes.src[0], tb));
      done.rows += s.rows;
      done.bytes += s.bytes;
      streamed.push(s);
      hooks.onProgress?.({ table: tb.table, ...done });
      await hooks.afterTable?.(tb.table);
    }
    await hooks.loaded?.();
    const handedOut = await sequenceValues(run.source, run.plan.from.schema);
    await inTransaction(t, () =>
      advanceSequences(
        t,
        schema,
        tables.map((x) => x.table),
        handedOut,
      ),
    );
    await hooks.beforeVerify?.(t, schema, tables);
    // Every part committed: only the target's side is left, measured on every load connection at once.
    const checks = await early.verify(lanes.dst, streamed, 'row by row');
    await faultPoint('move.before-commit');
    return checks;
  } finally {
    // No source measurement left running when the snapshot's connections go back.
    await early.settled();
  }
}

/**
 * One table's `n` parts at once, part k on source lane k and target lane k, each in its own
 * committed transaction. Throws (the first failure) only once every part has ended, so no
 * connection goes back mid-statement; parts that committed are the caller's to remove.
 */
async function loadTableInParts(
  run: CopyRun,
  lanes: { src: pg.ClientBase[]; dst: pg.ClientBase[] },
  tb: CopyTable,
  n: number,
  before: { rows: number; bytes: number },
  sourceRead: () => void,
): Promise<Streamed> {
  const now = Array.from({ length: n }, () => ({ rows: 0, bytes: 0 }));
  const progress = (k: number, p: { rows: number; bytes: number }) => {
    now[k] = p;
    const rows = before.rows + now.reduce((a, x) => a + x.rows, 0);
    const bytes = before.bytes + now.reduce((a, x) => a + x.bytes, 0);
    run.hooks.onProgress?.({ table: tb.table, rows, bytes });
  };
  const settled = await Promise.allSettled(
    now.map((_, k) =>
      inTransaction(lanes.dst[k], async (c) => {
        await boundLockWait(c, run.lockWaitMs);
        // The part's transaction does nothing but the COPY: the setting need not be put back.
        await checksByIndex(c);
        return copyTable(
          run,
          { source: lanes.src[k], target: c },
          tb,
          false,
          (p) => progress(k, p),
          n > 1 ? { index: k, of: n } : undefined,
          // Lane 0's source connection measures the table once its part has been read.
          k === 0 ? sourceRead : undefined,
        );
      }),
    ),
  );
  const failed = settled.find((r) => r.status === 'rejected');
  if (failed) throw (failed as PromiseRejectedResult).reason;
  const got = settled.map((r) => (r as PromiseFulfilledResult<Streamed>).value);
  const rows = got.reduce((a, x) => a + x.rows, 0);
  return {
    table: tb.table,
    rows,
    bytes: got.reduce((a, x) => a + x.bytes, 0),
    parts: n,
    ...(got[0].format ? { format: got[0].format } : {}),
  };
}
