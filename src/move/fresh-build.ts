import type pg from 'pg';
import { inTransaction } from '../fleet/fleet.js';
import { REBUILD_WORK_MEM, tableSteps, type Deferred } from '../copy/deferred-indexes.js';
import { recordDigest } from '../copy/record-digest.js';
import type { CopyTable } from '../copy/tables.js';
import { qualified } from '../sql.js';
import type { CopyRun } from './copy-stream.js';
import type { jobPool } from '../fanout/job-pool.js';

type Jobs = ReturnType<typeof jobPool<pg.ClientBase>>;
/** A table's rows as recordDigest measured them. */
export type Digest = Awaited<ReturnType<typeof recordDigest>>;

/**
 * One loaded (committed) table of a new placement made whole on the target's job connections:
 * each of its indexes (its keys' too) built on a connection of its own, all at once, while another
 * measures its rows (recordDigest: final once committed, nobody else writes the placement); then, on
 * one connection, the keys attached to their indexes and statistics taken for the foreign keys'
 * checks. Resolves to the table's target digest once all of it is done.
 */
export async function buildTableJobs(run: CopyRun, jobs: Jobs, d: { deferred: Deferred; path: string }, tb: CopyTable): Promise<Digest> {
  const steps = tableSteps(d.deferred, tb.table);
  const built = Promise.all(steps.indexes.map((sql) => jobs.run((c) => inPath(c, d.path, [sql]))));
  const measured = jobs.run((c) => targetDigest(run, c, tb));
  const keyed = built.then(() =>
    jobs.run((c) => inPath(c, d.path, [...steps.attach, `analyze ${qualified(run.plan.to.schema, tb.table)}`])),
  );
  const [digest] = await Promise.all([measured, keyed]);
  return digest;
}

/**
 * Statements in one transaction on `c`, under the search path the definitions were read with
 * (they name tables as the loading connection saw them), with the rebuild's maintenance_work_mem.
 */
export async function inPath(c: pg.ClientBase, path: string, statements: string[]): Promise<void> {
  await inTransaction(c, async () => {
    await c.query(`select set_config('search_path', $1, true)`, [path]);
    await c.query(`set local maintenance_work_mem = '${REBUILD_WORK_MEM}'`);
    for (const sql of statements) await c.query(sql);
  });
}

/** The target's rows of a table, final once its transaction committed (nobody else writes the placement). */
export async function targetDigest(run: CopyRun, c: pg.ClientBase, tb: CopyTable): Promise<Digest> {
  await run.hooks.beforeTargetDigest?.(c, run.plan.to.schema, tb);
  return recordDigest(c, tb, run.dstScope, run.config);
}
