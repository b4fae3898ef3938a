import type pg from 'pg';
import { inTransaction, type Fleet } from '../fleet/fleet.js';
import type { ShardClient } from '../fleet/shard-connections.js';
import { addForeignKeys, buildKeys, dropDeferred, REBUILD_WORK_MEM, type Deferred } from '../copy/deferred-indexes.js';
import { emptiedForFreeze } from '../copy/freeze.js';
import { holdForFreshLoad } from '../copy/not-valid-constraints.js';
import { advanceSequences } from '../copy/sequences.js';
import { sqlDigest, type SqlDigest } from '../copy/sql-digest.js';
import type { CopyTable } from '../copy/tables.js';
import { faultPoint } from '../operations/fault-points.js';
import { qualified } from '../sql.js';
import { streamTables, type CopyRun } from './copy-stream.js';
import { jobPool } from './job-pool.js';
import { assertSameDigests, type TableCheck } from './verify-checks.js';

/** At most this many more connections to the target build tables' indexes at once (pgcopydb's --index-jobs default is 4 too). */
export const INDEX_JOBS = 4;

/**
 * An offline move into a new placement (schema or database), the way `pgcopydb clone` does it but
 * verified: every key and index dropped in one committed transaction; then each table truncated
 * and loaded (COPY FREEZE) in its own, and as soon as it commits, its indexes and keys built,
 * statistics taken and its rows measured (sqlDigest) on a spare connection of the target shard
 * (as many as its budget has free, up to INDEX_JOBS) while the next table copies. Once the last
 * table is in, the source's digests are read in its snapshot while the builds finish; then the
 * foreign keys, each checked once on analyzed tables, the constraints NOT VALID at the source and
 * the sequences, in one transaction; then both sides' digests compared (MOVE_VERIFY).
 *
 * Committing table by table is safe here because nobody can see the placement before the switch
 * (the catalog does not point at it), its rows cannot change once committed, and a move that
 * fails or is killed removes the whole placement (offline-run.ts, the sweep). With no spare
 * connection the builds run one after another on `t`, after the copy.
 */
export async function loadFreshInParallel(run: CopyRun, fleet: Fleet, t: ShardClient): Promise<TableCheck[]> {
  const { plan, tables, hooks, config } = run;
  const schema = plan.to.schema;
  const { putBack, deferred, path, plain } = await inTransaction(t, async () => ({
    // The constraints NOT VALID at the source go first (holdForFreshLoad), then every key and index.
    putBack: await holdForFreshLoad(t, schema, run.constraints),
    deferred: await dropDeferred(t, schema),
    // The definitions name tables as this connection's search path sees them: the builders use it too.
    path: (await t.query<{ p: string }>(`select current_setting('search_path') as p`)).rows[0].p,
    plain: await unpartitioned(t, schema),
  }));
  // A partitioned table's (and anything not copied) keys are built with the foreign keys, at the end.
  const byJob = new Set(tables.map((x) => x.table).filter((x) => plain.has(x)));
  const build = (c: pg.ClientBase, tb: CopyTable) => buildTable(run, c, { deferred, path }, tb);
  return fleet.withSpareClients(plan.to.shard, plan.to.database, Math.min(INDEX_JOBS, byJob.size), async (spares) => {
    const jobs = jobPool(spares);
    const built = new Map<string, Promise<SqlDigest>>();
    let sourceDigests: Promise<SqlDigest[]> | undefined;
    try {
      const streamed = await streamTables(run, t, {
        each: async (tb, copy) => {
          const s = await inTransaction(t, async () => copy((await emptiedForFreeze(t, schema, [tb.table])).has(tb.table)));
          if (spares.length && byJob.has(tb.table))
            built.set(
              tb.table,
              jobs.run((c) => build(c, tb)),
            );
          return s;
        },
      });
      // The source measured in its snapshot while the target builds.
      sourceDigests = digestEach(run.source, tables, (c, tb) => sqlDigest(c, tb, run.srcScope, config));
      sourceDigests.catch(() => undefined);
      for (const tb of tables) if (!built.has(tb.table) && byJob.has(tb.table)) built.set(tb.table, Promise.resolve(await build(t, tb)));
      const measured = new Map<string, SqlDigest>();
      for (const [table, p] of built) measured.set(table, await p);
      await inTransaction(t, async () => {
        await t.query(`set local maintenance_work_mem = '${REBUILD_WORK_MEM}'`);
        await buildKeys(t, { idx: deferred.idx.filter((i) => !byJob.has(i.rel)), cons: deferred.cons.filter((k) => !byJob.has(k.rel)) });
        await addForeignKeys(t, deferred, { analyzed: byJob });
        await putBack();
        await advanceSequences(
          t,
          schema,
          tables.map((x) => x.table),
        );
      });
      await hooks.beforeVerify?.(t, schema, tables, { measured: true });
      // What no job measured (a partitioned table), measured now.
      for (const tb of tables) if (!measured.has(tb.table)) measured.set(tb.table, await targetDigest(run, t, tb));
      const src = await sourceDigests;
      const checks = tables.map((tb, i) => {
        const d = measured.get(tb.table)!;
        return {
          ...streamed[i],
          source: { rows: src[i].rows, hash: src[i].hash },
          target: { rows: d.rows, hash: d.hash },
          foreignKeys: 'once per table' as const,
        };
      });
      assertSameDigests(checks);
      await faultPoint('move.before-commit');
      return checks;
    } finally {
      // No connection goes back to the pool mid-statement.
      await jobs.settled();
      await sourceDigests?.catch(() => undefined);
    }
  });
}

/** One table's indexes and keys (in one transaction), its statistics for the foreign keys' checks, then its rows measured. */
async function buildTable(run: CopyRun, c: pg.ClientBase, d: { deferred: Deferred; path: string }, tb: CopyTable): Promise<SqlDigest> {
  const schema = run.plan.to.schema;
  await inTransaction(c, async () => {
    await c.query(`select set_config('search_path', $1, true)`, [d.path]);
    await c.query(`set local maintenance_work_mem = '${REBUILD_WORK_MEM}'`);
    await buildKeys(c, {
      idx: d.deferred.idx.filter((i) => i.rel === tb.table),
      cons: d.deferred.cons.filter((k) => !k.fk && k.rel === tb.table),
    });
    await c.query(`analyze ${qualified(schema, tb.table)}`);
  });
  return targetDigest(run, c, tb);
}

/** The target's rows of a table, final once its transaction committed (nobody else writes the placement). */
async function targetDigest(run: CopyRun, c: pg.ClientBase, tb: CopyTable): Promise<SqlDigest> {
  await run.hooks.beforeTargetDigest?.(c, run.plan.to.schema, tb);
  return sqlDigest(c, tb, run.dstScope, run.config);
}

async function digestEach(
  c: pg.ClientBase,
  tables: CopyTable[],
  fn: (c: pg.ClientBase, tb: CopyTable) => Promise<SqlDigest>,
): Promise<SqlDigest[]> {
  const out: SqlDigest[] = [];
  for (const tb of tables) out.push(await fn(c, tb));
  return out;
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
