import { setTimeout as sleep } from 'node:timers/promises';
import type { CatalogDb } from '../catalog/open.js';
import { updateTenant } from '../catalog/tenants.js';
import { recordEvent } from '../catalog/events.js';
import { redactText } from '../config/redact.js';
import { EXIT, TenantctlError, UsageError, errorMessage } from '../errors.js';
import { createPlacementAtVersion } from '../migrate/placement-at-version.js';
import { sqlDigest } from '../copy/sql-digest.js';
import { advanceSequences } from '../copy/sequences.js';
import type { CopyScope } from '../copy/tables.js';
import pLimit from 'p-limit';
import { ident, qualified } from '../sql.js';
import type { MovePlan } from './plan.js';
import { preflight } from './preflight.js';
import { onlinePreflight } from './online-preflight.js';
import { fenceRecordFor, preparePoolFence, takeFence, type HeldFence } from './fence.js';
import type { TableCheck } from './copy.js';
import { MoveVerifyError } from './copy.js';
import { isInterrupt, stopIfInterrupted } from './interrupt.js';
import { phaseClock } from './phase-clock.js';
import { keepSuspended } from './keep-suspended.js';
import { MoveRecord } from './record.js';
import { removeEnd } from './remove.js';
import { namesAfter } from './names.js';
import { liftSwitchFence, placeSwitchFence } from './switch-fence.js';
import {
  createSourceSide,
  createSubscription,
  dropReplication,
  publicationSql,
  replicationRecordFor,
  sourcePosition,
  stopSubscription,
  waitForCatchUp,
  waitForSync,
  type ReplicationRecord,
} from './replication.js';
import { ONLINE_PHASES, type MoveDeps, type MoveResult } from './run.js';
import { MODEL_TRAITS } from '../placement/placement.js';

/** How long the initial copy may take, and the catch-ups before and under the fence. */
const SYNC_TIMEOUT_MS = 6 * 3600_000;
const CATCH_UP_TIMEOUT_MS = 3600_000;
/** Writes are blocked while the last changes arrive: never longer than this. */
const FENCED_CATCH_UP_TIMEOUT_MS = 30_000;

/** A difference is measured again this many times, this far apart, before it counts (see verify). */
const VERIFY_RETRIES = 10;
const VERIFY_RETRY_MS = 300;

/** Tables digested at once while writes are blocked (two connections each, one per side). */
const VERIFY_CONCURRENCY = 3;

const FAULT = () => process.env.TENANTCTL_INJECT_FAULT;

/**
 * An online move (same model, another shard) with PostgreSQL logical replication: the target
 * placement is made at the source's version, a publication of the tenant's rows (a row filter on
 * its key in a pool) and a slot on the source, a subscription at the target copies them and
 * streams every later change while the tenant keeps writing. Only then is the tenant fenced, for
 * the last catch-up (the WAL up to the fence), after which the subscription is stopped, both sides
 * are verified by the offline move's digests, sequences moved past the copied ids, the catalog
 * switched in one transaction and the fence lifted (`writeBlockedMs`: fence on → lifted); then the
 * subscription, the slot and the publication are dropped.
 * Every exit path drops the publication, the slot and the subscription; a killed mover's are
 * named in its operations row and dropped by the next move or `move rollback` (recover.ts).
 */
export async function runOnlineMove(
  deps: MoveDeps,
  plan: MovePlan,
  prevStatus: string,
  prevDetail: string | null,
  started: number,
  resumed: MoveResult['resumed'],
): Promise<MoveResult> {
  const { db, fleet, config } = deps;
  const { phases, begin, done } = phaseClock(deps);

  begin('preflight');
  const pre = await (async () => {
    // The online checks read only: they come before the offline preflight, which may migrate a pool target.
    await onlinePreflight(deps, plan);
    const p = await preflight(deps, plan);
    await preparePoolFence(fleet, config, plan.from).catch((err) => {
      throw new TenantctlError(
        'MOVE_FAILED',
        `installing the write-fence policies in ${plan.from.target} failed: ${errorMessage(err)}; nothing was changed`,
        'a long transaction may hold the pool tables: try again when it has ended',
      );
    });
    return p;
  })().catch((err) => {
    deps.onPhase?.({ phase: 'preflight', state: 'failed', detail: errorMessage(err) });
    throw err;
  });
  const rec = await MoveRecord.start(db, {
    plan,
    status: prevStatus as never,
    statusDetail: prevDetail,
    resumedFrom: resumed?.move,
    online: true,
  });
  await done('preflight', rec, pre.targetMigrated.length ? `target migrated: ${pre.targetMigrated.join(', ')}` : undefined);
  await db.transaction().execute(async (tx) => {
    await updateTenant(tx, plan.tenant, { status: 'moving', status_detail: `moving online to ${plan.to.target} (move ${rec.id})` });
    await recordEvent(tx, {
      command: deps.command,
      action: 'move started',
      result: 'started',
      tenant: plan.tenant,
      details: { move: rec.id, online: true, from: plan.from.target, to: plan.to.target, version: pre.version },
    });
  });

  const repl: ReplicationRecord = replicationRecordFor(rec.id, plan.from, plan.to);
  const noteRepl = async (patch: Partial<ReplicationRecord>) => {
    Object.assign(repl, patch);
    await rec.update({ replication: { ...repl } });
  };
  const srcScope: CopyScope = { model: plan.from.model, schema: plan.from.schema, key: plan.key };
  const dstScope: CopyScope = { model: plan.to.model, schema: plan.to.schema, key: plan.key };
  let fence: HeldFence | undefined;
  let switched = false;
  let checks: TableCheck[] = [];
  try {
    begin('copy');
    await noteRepl({});
    // Recorded before it is made: a kill from here on leaves a target the next command removes.
    await rec.update({ targetCreated: true, rows: 0, bytes: 0 });
    if (!MODEL_TRAITS[plan.to.model].sharedTables) {
      // An empty placement at the source's version (the subscription fills it), committed in one transaction.
      await createPlacementAtVersion(
        {
          slug: plan.tenant,
          key: plan.key,
          model: plan.to.model,
          shard: plan.to.shard,
          database_name: plan.to.database,
          schema_name: plan.to.schema,
        },
        {
          fleet,
          config,
          migrations: pre.atVersion,
          failure: (o) =>
            new TenantctlError(
              'MOVE_FAILED',
              `building the target ${plan.to.target} at the tenant's version failed: ${o.error?.message ?? 'unknown error'}`,
            ),
        },
      );
    }
    await createSourceSide(fleet, repl, publicationSql(repl.name, plan.from, plan.key, pre.tables, config), noteRepl);
    await createSubscription(fleet, repl, fleet.shard(plan.from.shard).url, noteRepl);
    await waitForSync(fleet, repl, SYNC_TIMEOUT_MS, (s) => {
      stopIfInterrupted(deps.signal);
      deps.onProgress?.({ table: `${s.ready}/${s.tables} tables copied`, rows: 0, bytes: 0 });
      void rec.heartbeat({ tablesReady: s.ready }).catch(() => undefined);
    });
    if (FAULT() === 'move-hang-in-copy') {
      await rec.update({ lastTable: pre.tables.at(-1)?.table });
      await new Promise(() => setInterval(() => {}, 1000));
    }
    // The tests' proof that streamed changes (not only the initial copy) arrive: a pause while the tenant writes.
    if (FAULT() === 'move-online-pause') await new Promise((r) => setTimeout(r, 1500));
    // Streaming: catch up with everything committed so far while the tenant still writes.
    await waitForCatchUp(fleet, repl, await sourcePosition(fleet, repl), CATCH_UP_TIMEOUT_MS);
    await done('copy', rec);

    begin('fence');
    const frec = fenceRecordFor(plan.from, plan.key);
    await rec.update({ fence: frec });
    fence = await takeFence(fleet, frec);
    await rec.update({ fence: fence.record });
    await done('fence', rec);

    begin('catch-up');
    // The fence waited for the tenant's in-flight writes: every committed write is before this position.
    await waitForCatchUp(fleet, repl, await sourcePosition(fleet, repl), FENCED_CATCH_UP_TIMEOUT_MS);
    await done('catch-up', rec);

    begin('verify');
    const tables = pre.tables;
    if (FAULT()?.startsWith('move-tamper')) await fleet.withClient(plan.to.shard, plan.to.database, (c) => tamper(c, plan));
    // Both sides measured by the same query inside PostgreSQL (sqlDigest: no row crosses to
    // Node), each on its own cluster at once; a few tables at once, since writes are blocked.
    const limit = pLimit(VERIFY_CONCURRENCY);
    const measure = (tb: (typeof tables)[number]) =>
      limit(async () => {
        const [s, d] = await Promise.all([
          fleet.withClient(plan.from.shard, plan.from.database, (c) => sqlDigest(c, tb, srcScope, config)),
          fleet.withClient(plan.to.shard, plan.to.database, (c) => sqlDigest(c, tb, dstScope, config)),
        ]);
        return {
          table: tb.table,
          rows: s.rows,
          bytes: s.bytes,
          source: { rows: s.rows, hash: s.hash },
          target: { rows: d.rows, hash: d.hash },
        };
      });
    const differs = (c: TableCheck) => c.source.rows !== c.target.rows || c.source.hash !== c.target.hash;
    checks = await Promise.all(tables.map(measure));
    // Under the fence the source no longer changes, so the target can only lag by changes still
    // being applied (the walsender's reported position has been seen ahead of what the apply
    // worker had made visible): the subscription keeps running and differing tables are measured
    // again for a few seconds before a difference counts.
    for (let i = 0; i < VERIFY_RETRIES && checks.some(differs); i++) {
      await sleep(VERIFY_RETRY_MS);
      checks = await Promise.all(checks.map((c, j) => (differs(c) ? measure(tables[j]) : c)));
    }
    // Nothing more of the tenant's can arrive: the subscription stops (its worker gone) before the
    // switch. It is dropped, with the slot and the publication, once writes flow again.
    await stopSubscription(fleet, repl);
    const wrong = checks.filter(differs);
    if (wrong.length) {
      throw new MoveVerifyError(
        `verification failed: ${wrong.map((w) => `${w.table}: source ${w.source.rows} rows (hash ${w.source.hash}), target ${w.target.rows} rows (hash ${w.target.hash})`).join('; ')}; nothing was switched, the copy was removed`,
        checks,
      );
    }
    // Logical replication does not carry sequences: past the copied ids, before anyone writes there.
    await fleet.withClient(plan.to.shard, plan.to.database, (c) =>
      advanceSequences(
        c,
        plan.to.schema,
        tables.map((t) => t.table),
      ),
    );
    const rows = checks.reduce((n, c) => n + c.rows, 0);
    const bytes = checks.reduce((n, c) => n + c.bytes, 0);
    await done('verify', rec);

    await keepSuspended(deps.fleet, deps.config, plan, prevStatus);
    begin('switch');
    // The source refuses the application's writes from here until complete or rollback.
    await placeSwitchFence(deps, rec, plan, pre.tables);
    await switchCatalog(db, deps.command, plan, rec, checks, prevStatus, prevDetail);
    switched = true;
    await done('switch', rec);

    begin('unfence');
    await fence.lift();
    const writeBlockedMs = Date.now() - Date.parse(fence.record.at!);
    await rec.update({ fence: { ...fence.record, liftedAt: new Date().toISOString() }, writeBlockedMs });
    // Outside the write block. A shard that does not answer now leaves them recorded for the
    // tenant's next move command (sweepReplication); the move itself has succeeded.
    let warning: string | undefined;
    try {
      await dropReplication(fleet, repl);
      await noteRepl({ droppedAt: new Date().toISOString() });
    } catch (e) {
      warning = redactText(errorMessage(e));
    }
    await done('unfence', rec, warning);
    return {
      tenant: plan.tenant,
      status: 'switched',
      online: true,
      move: rec.id,
      from: plan.from,
      to: plan.to,
      version: pre.version,
      phases,
      tables: checks,
      rows,
      bytes,
      writeBlockedMs,
      targetMigrated: pre.targetMigrated,
      resumed,
      names: namesAfter(config, plan.tenant, plan.to, plan.from),
      ...(warning ? { warning } : {}),
      durationMs: Date.now() - started,
    };
  } catch (err) {
    const current = ONLINE_PHASES.find((p) => !phases.some((x) => x.phase === p)) ?? 'unfence';
    deps.onPhase?.({ phase: current, state: 'failed', detail: errorMessage(err) });
    let message = redactText(errorMessage(err));
    // Every exit path: replication dropped first (the subscription writes into the target), then the fence lifted.
    // move-tamper-keep-replication: the tests' stand-in for a source that does not answer now.
    if (!repl.droppedAt && FAULT() !== 'move-tamper-keep-replication') {
      try {
        await dropReplication(fleet, repl);
        await noteRepl({ droppedAt: new Date().toISOString() });
      } catch (e) {
        message += `; ${redactText(errorMessage(e))}`;
      }
    }
    if (fence) await fence.lift().catch(() => undefined);
    if (!switched) await liftSwitchFence(deps, rec).catch(() => undefined);
    const blocked = fence?.record.at ? Date.now() - Date.parse(fence.record.at) : undefined;
    if (!switched) {
      if (rec.progress.targetCreated && repl.droppedAt) {
        await removeEnd(deps, plan.tenant, plan.key, plan.to, plan.from).catch(() => undefined);
      }
      const isVerify = err instanceof MoveVerifyError;
      await db
        .transaction()
        .execute(async (tx) => {
          await updateTenant(tx, plan.tenant, { status: prevStatus as never, status_detail: prevDetail });
          await rec.update(
            {
              error: message,
              // A target still fed by a subscription that could not be dropped stays recorded for the next command.
              targetCreated: Boolean(rec.progress.targetCreated && !repl.droppedAt),
              ...(fence ? { fence: { ...fence.record, liftedAt: new Date().toISOString() } } : {}),
              writeBlockedMs: blocked,
              ...(isVerify ? { tables: err.checks } : {}),
            },
            isInterrupt(err) ? 'interrupted' : 'failed',
            tx,
          );
          await recordEvent(tx, {
            command: deps.command,
            action: isInterrupt(err) ? 'move interrupted' : 'move failed',
            result: 'failed',
            tenant: plan.tenant,
            details: { move: rec.id, online: true, from: plan.from.target, to: plan.to.target, error: message },
          });
        })
        .catch(() => undefined);
    }
    if (err instanceof UsageError || (err instanceof TenantctlError && err.exitCode === EXIT.locked)) throw err;
    return {
      tenant: plan.tenant,
      status: 'failed',
      online: true,
      move: rec.id,
      from: plan.from,
      to: plan.to,
      phases,
      writeBlockedMs: blocked,
      tables: err instanceof MoveVerifyError ? err.checks : undefined,
      resumed,
      durationMs: Date.now() - started,
      error: { code: err instanceof TenantctlError ? err.code : 'MOVE_FAILED', message },
    };
  }
}

/** The catalog points at the target, with the event `moved`, in one transaction. */
async function switchCatalog(
  db: CatalogDb,
  command: string,
  plan: MovePlan,
  rec: MoveRecord,
  checks: TableCheck[],
  prevStatus: string,
  prevDetail: string | null,
): Promise<void> {
  const rows = checks.reduce((n, c) => n + c.rows, 0);
  const bytes = checks.reduce((n, c) => n + c.bytes, 0);
  await db.transaction().execute(async (tx) => {
    await updateTenant(tx, plan.tenant, {
      model: plan.to.model,
      shard: plan.to.shard,
      region: plan.to.region,
      database_name: plan.to.database,
      schema_name: plan.to.schema,
      status: prevStatus as never,
      status_detail: prevDetail,
    });
    await rec.update({ phase: 'switch', tables: checks, rows, bytes, targetCreated: false }, 'switched', tx);
    await recordEvent(tx, {
      command,
      action: 'moved',
      result: 'ok',
      tenant: plan.tenant,
      details: {
        move: rec.id,
        online: true,
        from: plan.from.target,
        to: plan.to.target,
        rows,
        bytes,
        tables: checks.map((c) => ({ table: c.table, rows: c.rows, hash: c.target.hash })),
      },
    });
  });
}

/** The tests' tampered copy: one target row's text column changed before verification. */
async function tamper(c: Pick<import('pg').ClientBase, 'query'>, plan: MovePlan): Promise<void> {
  const mine = MODEL_TRAITS[plan.to.model].sharedTables ? 'where tenant_id::text = $1' : 'where $1::text is not null';
  await c.query(
    `update ${qualified(plan.to.schema, 'tasks')} set ${ident('title')} = title || 'x' where ctid = (select ctid from ${qualified(plan.to.schema, 'tasks')} ${mine} limit 1)`,
    [plan.key],
  );
}
