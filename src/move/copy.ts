import { boundLockWait, LOAD_LOCK_WAIT_MS, lockWaitError } from '../copy/load-lock-wait.js';
import type pg from 'pg';
import type { Config } from '../config/types.js';
import type { Fleet } from '../fleet/fleet.js';
import { inTransaction } from '../fleet/fleet.js';
import { TenantctlError } from '../errors.js';
import { ident, literal, qualified } from '../sql.js';
import type { ShardClient } from '../fleet/shard-connections.js';
import { needsKeyRewrite } from '../placement/placement.js';
import { drivers } from '../placement/drivers.js';
import { advanceSequences, sequenceValues } from '../copy/sequences.js';
import { intoFreshTables } from '../build/fresh-tables.js';
import { assertPoolCopyAllowed } from '../placement/pool/visibility.js';
import type { CopyScope, CopyTable } from '../copy/tables.js';
import type { MovePlan } from './plan.js';
import { dropForeignKeys, restoreForeignKeys } from './fk-once.js';
import { loadIntoPool, type ForeignKeyCheck } from '../copy/pool-load.js';
import { holdForSharedLoad, sourceConstraints } from '../copy/not-valid-constraints.js';
import { faultPoint } from '../operations/fault-points.js';
import { streamTables, type CopyHooks, type CopyRun, type Streamed } from './copy-stream.js';
import type { TableCheck } from './verify-checks.js';
import { loadFreshInParallel } from './fresh-parallel.js';
import { loadPoolInParts } from './pool-split.js';
import { binaryTables } from '../copy/binary-copy.js';
import { verifyBothSides } from './verify-both.js';

export type { TableCheck } from './verify-checks.js';
export { MoveVerifyError } from './verify-checks.js';
export type { CopyHooks } from './copy-stream.js';

/**
 * Copy the tenant from `plan.from` to `plan.to` and prove it, with the source read from ONE
 * repeatable-read snapshot (taken by the caller after the fence) on `source`:
 *  - an exclusive target, built empty at the source's version before the fence
 *    (build-target.ts), gets its rows in ONE transaction, or with `tableByTable` one per table
 *    (fresh-parallel.ts: up to 4 tables at once in the one snapshot, measured by recordDigest;
 *    nobody sees it before the switch, and a failed move removes it);
 *  - a pool target's rows are loaded in ONE transaction into the shared tables, or with
 *    `poolInParts`, when the role checks foreign keys row by row, big tables in parts on two
 *    connections at once, each part committed (pool-split.ts).
 * Each table streams COPY out → COPY in in foreign-key order (parents first), never a whole table
 * in memory; keys are written as the tenant's key into a pool target. Then, per table, the row
 * count and order-independent hash are read back on each side by the same query (not taken from
 * the stream) — any difference throws MOVE_VERIFY and the target's transaction rolls back.
 */
export async function copyAndVerify(
  deps: { config: Config; fleet: Fleet },
  plan: MovePlan,
  source: pg.ClientBase,
  tables: CopyTable[],
  hooks: CopyHooks = {},
  opts: { fastLoad?: boolean; tableByTable?: boolean; poolInParts?: boolean; lockWaitMs?: number } = {},
): Promise<TableCheck[]> {
  const { config, fleet } = deps;
  const to = plan.to;
  const srcScope: CopyScope = { model: plan.from.model, schema: plan.from.schema, key: plan.key };
  const run: CopyRun = {
    config,
    plan,
    source,
    tables,
    hooks,
    srcScope,
    dstScope: { model: to.model, schema: to.schema, key: plan.key },
    // Into a pool the key column must hold the tenant's key; elsewhere the rows are kept as they are.
    rewriteKey: needsKeyRewrite(plan.from.model, to.model) ? plan.key : undefined,
    // The source's constraints in its snapshot: those NOT VALID there come back NOT VALID with the rows breaking them.
    constraints: await sourceConstraints(source, srcScope, tables, config.tenantKey.type),
    lockWaitMs: opts.lockWaitMs ?? LOAD_LOCK_WAIT_MS,
  };
  // A neighbour's lock on the pool's tables stops the load after lockWaitMs, named (load-lock-wait.ts).
  const named = async (t: ShardClient, err: unknown) =>
    lockWaitError(err, t, {
      schema: to.schema,
      shard: to.shard,
      ms: run.lockWaitMs,
      code: 'MOVE_FAILED',
      what: `the load into ${to.shard}'s pool`,
      longer: LONGER,
    });
  return fleet.withClient(to.shard, to.database, (t) =>
    drivers[to.model].moveTarget({
      // Row by row into a pool, the offline move loads big tables in parts on two connections at
      // once (pool-split.ts: committed parts, removed by key if the move fails or is killed).
      sharedTables: async () => {
        // Pool to pool, the same tables at both ends: COPY BINARY where every column's type matches.
        run.binary = await binaryTables({ source, target: t }, { source: srcScope.schema, target: to.schema }, tables);
        try {
          return (
            (opts.poolInParts && !opts.fastLoad ? await loadPoolInParts(run, fleet, t) : undefined) ??
            (await inTransaction(t, () => intoPool(run, t, Boolean(opts.fastLoad))))
          );
        } catch (err) {
          throw keyRewriteCollision(await named(t, err), run);
        }
      },
      // The exclusive target was built empty at the source's version before the fence
      // (build-target.ts). Nobody reads the placement before the switch: its indexes and keys are
      // built once after the load and its foreign keys checked once. The offline move loads it
      // table by table, several at once, each table's indexes built on spare connections while others copy
      // (fresh-parallel.ts); otherwise the rows go in ONE transaction (deferIndexes drops every
      // key, so the load's own dropForeignKeys finds none left to drop).
      ownPlacement: () =>
        opts.tableByTable
          ? loadFreshInParallel(run, fleet, t)
          : inTransaction(t, () =>
              intoFreshTables(t, to.schema, { tables, constraints: run.constraints }, (frozen, built) =>
                loadAndVerify(run, t, 'once per table', { afterLoad: built, frozen }),
              ),
            ),
    }),
  );
}

/**
 * Into a pool, every key column is written as the tenant's key (rewriteKey). A schema or database
 * tenant's rows that carried other keys (data merged or restored from elsewhere) can then collide
 * on a unique key that includes the key column: PostgreSQL's bare "duplicate key value" named
 * neither that nor the fix. The failed move is undone as any other.
 */
function keyRewriteCollision(err: unknown, run: CopyRun): unknown {
  const e = err as { code?: string; constraint?: string; table?: string; detail?: string };
  if (run.rewriteKey === undefined || e.code !== '23505') return err;
  const keyOf = (table: string | undefined) => run.tables.find((t) => t.table === table)?.keyColumn ?? run.config.tenantKey.column;
  const table = `${run.plan.from.schema}.${e.table ?? '?'}`;
  return new TenantctlError(
    'MOVE_FAILED',
    `rows of ${table} at ${run.plan.from.target} carry ${keyOf(e.table)} values other than ${run.plan.tenant}'s key ${run.rewriteKey}: written as that key in the pool, they collide on ${e.constraint ?? 'a unique key'} (${e.detail ?? 'a duplicate key'}); the move was undone`,
    `find them at the source (select * from ${qualified(run.plan.from.schema, e.table ?? '?')} where ${ident(keyOf(e.table))} <> ${literal(run.rewriteKey)}), give them the tenant's key or remove them, then move again`,
    undefined,
    { cause: err },
  );
}

/** The flag that gives a move's load into a pool longer to wait for a lock. */
const LONGER = 'move --lock-wait 5min waits longer';

/** Into shared pool tables, in the caller's transaction: foreign keys checked per tenant, or with --fast-load dropped and checked once per table. */
async function intoPool(run: CopyRun, t: ShardClient, fastLoad: boolean): Promise<TableCheck[]> {
  const schema = run.plan.to.schema;
  await assertPoolCopyAllowed(t, schema, run.config, 'load');
  // Never wait long behind another tenant's lock on the shared tables (nor for --fast-load's own).
  await boundLockWait(t, run.lockWaitMs);
  if (!fastLoad) return loadAndVerify(run, t, 'pool');
  // Its foreign keys are dropped for the load anyway; its NOT VALID checks the rows break are held too.
  const names = run.tables.map((x) => x.table);
  const held = await holdForSharedLoad(t, schema, names, run.constraints, { foreignKeys: 'dropped', code: 'MOVE_FAILED' });
  const checks = await loadAndVerify(run, t, 'once per table');
  await held.putBack();
  return checks;
}

/**
 * `once per table`: foreign keys dropped for the load and re-added (a new placement, or a pool
 * with --fast-load); `pool`: once per tenant when the role may switch triggers off, else row by
 * row (loadIntoPool). Then what was deferred is built back (the `rebuild` the hooks report),
 * sequences moved past the ids, and both sides verified.
 */
async function loadAndVerify(
  run: CopyRun,
  t: ShardClient,
  fk: 'once per table' | 'pool',
  o: { afterLoad?: () => Promise<void>; frozen?: Set<string> } = {},
): Promise<TableCheck[]> {
  const { plan, tables, hooks } = run;
  const schema = plan.to.schema;
  const names = tables.map((x) => x.table);
  const held = fk === 'once per table' ? await dropForeignKeys(t, schema, names) : [];
  const copyAll = () => streamTables(run, t, { frozen: o.frozen });
  let foreignKeys: ForeignKeyCheck = 'once per table';
  let streamed: Streamed[];
  if (fk === 'pool') {
    ({ result: streamed, foreignKeys } = await loadIntoPool(
      t,
      { schema, tables, key: plan.key, keyType: run.config.tenantKey.type, code: 'MOVE_FAILED', constraints: run.constraints },
      copyAll,
    ));
  } else {
    streamed = await copyAll();
  }
  // Foreign keys back, each checked once over the table (a violation fails the transaction);
  // a new placement's deferred indexes and keys built: verified as they end.
  await restoreForeignKeys(t, schema, held);
  await o.afterLoad?.();
  await advanceSequences(t, schema, names, await sequenceValues(run.source, run.plan.from.schema));
  await hooks.beforeVerify?.(t, schema, tables);
  const checks = await verifyBothSides(run, t, streamed, foreignKeys);
  // Tests of the FOR KEY SHARE promise: everything checked, the target's transaction still open.
  await faultPoint('move.before-commit');
  return checks;
}
