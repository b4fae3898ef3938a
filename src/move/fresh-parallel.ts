import { refreshMaterializedViews } from '../build/matviews.js';
import type pg from 'pg';
import { inTransaction, type Fleet } from '../fleet/fleet.js';
import type { ShardClient } from '../fleet/shard-connections.js';
import { addForeignKeys, buildKeys, dropDeferred, REBUILD_WORK_MEM, validateSteps, type Deferred } from '../copy/deferred-indexes.js';
import { exportSnapshot, joinSnapshot } from '../copy/snapshot.js';
import { emptiedForFreeze } from '../copy/freeze.js';
import { holdForFreshLoad } from '../copy/not-valid-constraints.js';
import { advanceSequences, sequenceValues } from '../copy/sequences.js';
import { userTriggersOff } from '../copy/user-triggers.js';
import { recordDigest } from '../copy/record-digest.js';
import { faultPoint } from '../operations/fault-points.js';
import { copyTable, type CopyRun, type Streamed } from './copy-stream.js';
import { buildTableJobs, inPath, targetDigest, type Digest } from './fresh-build.js';
import { jobPool } from '../fanout/job-pool.js';
import { assertSameDigests, type TableCheck } from './verify-checks.js';

/** At most this many more connections to the target build tables' indexes at once (pgcopydb's --index-jobs default is 4 too). */
export const INDEX_JOBS = 4;
/** At most this many tables copied at once (pgcopydb's --table-jobs default is 4 too), each on a source and a target connection. */
export const COPY_JOBS = 4;

/**
 * An offline move into a new placement (schema or database), the way `pgcopydb clone` does it but
 * verified: every key and index dropped in one committed transaction; then the tables copied up
 * to COPY_JOBS at once, each truncated and loaded (COPY FREEZE) in its own transaction, the source
 * read on as many connections as its shard has free, all in the one snapshot the move took after
 * the fence (exportSnapshot). As soon as a table commits, its indexes and keys are built, each on
 * a connection of its own, its statistics taken and its rows measured (fresh-build.ts), and its
 * rows at the source measured in the same snapshot, while other tables copy. The target's job
 * connections are the loading one and as many more as its budget has free, up to INDEX_JOBS;
 * copies go first. Then the foreign keys, added NOT VALID and each validated once on analyzed
 * tables (the tables holding them at once), the constraints NOT VALID at the source and the
 * sequences; then both sides' digests (recordDigest) compared (MOVE_VERIFY).
 *
 * Committing table by table is safe here because nobody can see the placement before the switch
 * (the catalog does not point at it), its rows cannot change once committed, and a move that
 * fails or is killed removes the whole placement (offline-run.ts, the sweep). With no spare
 * connection on either side, the tables copy one after another and are built between them.
 */
export async function loadFreshInParallel(run: CopyRun, fleet: Fleet, t: ShardClient): Promise<TableCheck[]> {
  const { plan, tables } = run;
  const schema = plan.to.schema;
  const { putBack, deferred, path, plain, triggersOn } = await inTransaction(t, async () => ({
    // The constraints NOT VALID at the source go first (holdForFreshLoad), then every key and index.
    putBack: await holdForFreshLoad(t, schema, run.constraints),
    // The user triggers off for the copy, committed with the drops: each table loads in its own transaction (user-triggers.ts).
    triggersOn: await userTriggersOff(t, schema),
    deferred: await dropDeferred(t, schema),
    // The definitions name tables as this connection's search path sees them: the builders use it too.
    path: (await t.query<{ p: string }>(`select current_setting('search_path') as p`)).rows[0].p,
    plain: await unpartitioned(t, schema),
  }));
  // A partitioned table's (and anything not copied) keys are built with the foreign keys, at the end.
  const byJob = new Set(tables.map((x) => x.table).filter((x) => plain.has(x)));
  return fleet.withSpareClients(plan.to.shard, plan.to.database, INDEX_JOBS, (targets) =>
    fleet.withSpareClients(plan.from.shard, plan.from.database, Math.min(COPY_JOBS, tables.length) - 1, async (sources) => {
      const joined: pg.ClientBase[] = [];
      try {
        if (sources.length) {
          const id = await exportSnapshot(run.source);
          for (const c of sources) {
            // Listed first: one whose join fails is rolled back too before it goes back.
            joined.push(c);
            await joinSnapshot(c, id);
          }
        }
        const lanes = { src: jobPool<pg.ClientBase>([run.source, ...joined]), dst: jobPool<pg.ClientBase>([t, ...targets]) };
        const loaded = await loadAll(run, lanes, { deferred, path }, byJob);
        await inTransaction(t, async () => {
          await t.query(`set local maintenance_work_mem = '${REBUILD_WORK_MEM}'`);
          await buildKeys(t, { idx: deferred.idx.filter((i) => !byJob.has(i.rel)), cons: deferred.cons.filter((k) => !byJob.has(k.rel)) });
          await addForeignKeys(t, deferred, { analyzed: byJob, notValid: true });
        });
        // Each foreign key checked once, the tables holding them at once (a violation fails the
        // move); every check ended before any connection goes back.
        const checked = await Promise.allSettled(validateSteps(deferred).map((steps) => lanes.dst.run((c) => inPath(c, path, steps))));
        for (const r of checked) if (r.status === 'rejected') throw r.reason;
        await inTransaction(t, async () => {
          await putBack();
          await triggersOn();
          await refreshMaterializedViews(t, schema);
          await advanceSequences(
            t,
            schema,
            tables.map((x) => x.table),
            await sequenceValues(run.source, run.plan.from.schema),
          );
        });
        await run.hooks.beforeVerify?.(t, schema, tables, { measured: true });
        // What no job measured (a partitioned table), measured now.
        for (const tb of tables) if (!loaded.measured.has(tb.table)) loaded.measured.set(tb.table, await targetDigest(run, t, tb));
        const checks = tables.map((tb, i) => {
          const src = loaded.source[i];
          const d = loaded.measured.get(tb.table)!;
          return {
            ...loaded.streamed[i],
            source: { rows: src.rows, hash: src.hash },
            target: { rows: d.rows, hash: d.hash },
            foreignKeys: 'once per table' as const,
          };
        });
        assertSameDigests(checks);
        await faultPoint('move.before-commit');
        return checks;
      } finally {
        for (const c of joined) await c.query('rollback').catch(() => undefined);
      }
    }),
  );
}

type Lanes = { src: ReturnType<typeof jobPool<pg.ClientBase>>; dst: ReturnType<typeof jobPool<pg.ClientBase>> };

/**
 * Every table copied (up to as many at once as both sides have lanes), then, as each commits,
 * built and measured at the target and measured at the source; `loaded` once the last table is
 * in (the copy phase's end). After the first failure nothing more starts, and it returns (throws)
 * only once every statement started has ended, so no connection goes back mid-statement.
 */
async function loadAll(
  run: CopyRun,
  lanes: Lanes,
  d: { deferred: Deferred; path: string },
  byJob: Set<string>,
): Promise<{ streamed: Streamed[]; source: Digest[]; measured: Map<string, Digest> }> {
  const { tables, hooks } = run;
  const schema = run.plan.to.schema;
  let failed: unknown;
  const guard = <T>(p: Promise<T>): Promise<T> => {
    p.catch((err) => (failed ??= err));
    return p;
  };
  const go = () => {
    if (failed) throw failed;
  };
  const progress = new Map<string, { rows: number; bytes: number }>();
  const report = (table: string, p: { rows: number; bytes: number }) => {
    progress.set(table, p);
    let rows = 0;
    let bytes = 0;
    for (const x of progress.values()) {
      rows += x.rows;
      bytes += x.bytes;
    }
    hooks.onProgress?.({ table, rows, bytes });
  };
  const measured = new Map<string, Promise<Digest>>();
  const source: Promise<Digest>[] = [];
  const copied = tables.map((tb, i) =>
    guard(
      (async () => {
        const s = await lanes.src.run((src) =>
          lanes.dst.run((c) =>
            inTransaction(c, async () => {
              go();
              const freeze = (await emptiedForFreeze(c, schema, [tb.table])).has(tb.table);
              return copyTable(run, { source: src, target: c }, tb, freeze, (p) => report(tb.table, p));
            }),
          ),
        );
        report(tb.table, s);
        go();
        if (byJob.has(tb.table)) measured.set(tb.table, guard(buildTableJobs(run, lanes.dst, d, tb)));
        source[i] = guard(lanes.src.run((c) => (go(), recordDigest(c, tb, run.srcScope, run.config))));
        await hooks.afterTable?.(tb.table);
        return s;
      })(),
    ),
  );
  try {
    const streamed = await Promise.all(copied);
    await hooks.loaded?.();
    const out = new Map<string, Digest>();
    for (const [table, p] of measured) out.set(table, await p);
    return { streamed, source: await Promise.all(source), measured: out };
  } finally {
    // Each table's chain queues its builds and source digest before it ends: wait for those too.
    await Promise.allSettled(copied);
    await Promise.allSettled([...measured.values(), ...source]);
    await Promise.all([lanes.src.settled(), lanes.dst.settled()]);
  }
}

/** The schema's plain tables that are not partitions: each builds its own indexes (a partitioned table's recurse into its partitions). */
async function unpartitioned(c: pg.ClientBase, schema: string): Promise<Set<string>> {
  const { rows } = await c.query<{ relname: string }>(
    `select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace
      where n.nspname = $1 and c.relkind = 'r' and not c.relispartition`,
    [schema],
  );
  return new Set(rows.map((r) => r.relname));
}
