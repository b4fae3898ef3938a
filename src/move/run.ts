import { ONLINE_PHASES, PHASES, type MoveDeps, type MoveOptions, type MoveResult, type PhaseName } from './types.js';
import { getTenant, tenantCountsByShard, updateTenant } from '../catalog/tenants.js';
import { recordEvent } from '../catalog/events.js';
import { redactText } from '../config/redact.js';
import { lostConnectionError } from '../connection-loss.js';
import { TenantctlError, UsageError, errorMessage } from '../errors.js';
import { recordedFailure, runTenantOperation } from '../operations/tenant-operation.js';
import { endsCommand } from '../operations/failure.js';
import { assertSlug } from '../placement/slug.js';
import { planMove, type MoveEnd, type MovePlan } from './plan.js';
import { preflight } from './preflight.js';
import { fenceRecordFor, preparePoolFence, takeFence, type HeldFence } from './fence.js';
import { copyAndVerify, type TableCheck } from './copy.js';
import { buildTarget, plannedBuild, type TargetBuild } from './build-target.js';
import { isInterrupt, stopIfInterrupted } from './interrupt.js';
import { phaseClock } from './phase-clock.js';
import { tamperCopy } from './tamper.js';
import { keepSuspended } from './keep-suspended.js';
import { MoveRecord, openMove } from './record.js';
import { sweepTenant, type Leftover } from '../operations/sweep.js';
import { onlinePreflight } from './online-preflight.js';
import { runOnline } from './online-start.js';
import { removeEnd } from './remove.js';
import { namesAfter } from './names.js';
import { recordSwitch } from './switch-catalog.js';
import { liftSwitchFence, placeSwitchFence } from './switch-fence.js';
import { faultAction, faultPoint } from '../operations/fault-points.js';

/**
 * Move a tenant offline: plan and preflight (nothing changed on refusal, exit 2), build the
 * target at the source's version while the tenant still writes, fence its writes, copy from one
 * snapshot, verify both sides, switch the catalog in one transaction, lift
 * the fence. The source stays until `move complete`; `move rollback` goes back. Holds the
 * tenant's lock throughout (a second move exits 3). A move left `running` by a killed process is
 * cleaned up first and then started again (resume); one that already switched to the same target
 * is reported as such.
 *
 * @example
 *   const r = await moveTenant(deps, 'acme', { toShard: 'eu1', toModel: 'database' });
 *   r.status // 'switched'
 */
export async function moveTenant(deps: MoveDeps, slug: string, o: MoveOptions): Promise<MoveResult> {
  assertSlug(slug);
  const started = Date.now();
  const t0 = await getTenant(deps.db, slug);
  if (o.dryRun) {
    const plan = planMove(deps.config, t0, o, await tenantCountsByShard(deps.db));
    // Reads only: a dry run says whether the online move would be refused, and which way it would go.
    const path = o.online ? await onlinePreflight(deps, plan) : undefined;
    const targetBuild = o.online ? undefined : await plannedBuild(deps, plan);
    return {
      tenant: slug,
      status: 'planned',
      ...(path ? { online: true, onlineVia: path.via, ...(path.notReplication ? { notReplication: path.notReplication } : {}) } : {}),
      from: plan.from,
      to: plan.to,
      ...(targetBuild ? { targetBuild } : {}),
      phases: [],
      durationMs: Date.now() - started,
    };
  }
  // The sweep runs in the body (not the engine's default): what it cleaned is the move it resumes.
  return runTenantOperation(deps, { kind: 'move', slug, sweep: false }, async (run) => {
    // Ctrl-C stops the move at its next clean point before the switch (interrupt.ts).
    deps = { ...deps, signal: run.signal };
    // What killed operations of the tenant left goes first: a killed move is cleaned up (its
    // fence lifted, its copy removed, its status given back) and this one resumes it.
    const resumed = resumedFrom(await sweepTenant(deps, { slug }));
    const open = await openMove(deps.db, slug);
    if (open?.status === 'switched') {
      const t = await getTenant(deps.db, slug);
      const wanted = (() => {
        try {
          return planMove(deps.config, { ...t, ...endAsTenant(open.args.plan.from), status: open.args.status }, o).to.target;
        } catch {
          return undefined;
        }
      })();
      if (wanted !== open.args.plan.to.target) {
        throw new UsageError(
          'TENANT_STATE',
          `${slug} was moved to ${open.args.plan.to.target} (move ${open.id}) and that move awaits move complete or move rollback`,
          `tenantctl move complete ${slug} (drops the old placement) or tenantctl move rollback ${slug}, then move again`,
        );
      }
      const p = open.progress;
      return {
        tenant: slug,
        status: 'switched',
        move: open.id,
        from: open.args.plan.from,
        to: open.args.plan.to,
        ...(open.args.online ? { online: true } : {}),
        phases: phasesOf(p.phases, open.args.online),
        tables: p.tables,
        rows: p.rows,
        bytes: p.bytes,
        writeBlockedMs: p.writeBlockedMs,
        resumed,
        names: namesAfter(deps.config, slug, open.args.plan.to, open.args.plan.from),
        durationMs: Date.now() - started,
      };
    }
    // Read once under the lock, again only when a killed move was cleaned up (that restored its status).
    const t = resumed ? await getTenant(deps.db, slug) : run.tenant!;
    if (t.status !== 'active' && t.status !== 'suspended') {
      throw new UsageError(
        'TENANT_STATE',
        `tenant "${slug}" is ${t.status}; only active or suspended tenants can be moved`,
        t.status === 'moving' ? `tenantctl move rollback ${slug}` : 'finish the command that owns it first',
      );
    }
    const plan = planMove(deps.config, t, o, await tenantCountsByShard(deps.db));
    if (o.online) return runOnline(deps, plan, t.status, t.status_detail, started, resumed);
    return runMove(deps, plan, t.status, t.status_detail, started, resumed, Boolean(o.fastLoad));
  });
}

/** The sweep's findings as the move's report: the killed move it cleaned up first, and everything else it did. */
function resumedFrom(swept: Leftover[]): MoveResult['resumed'] {
  if (swept.length === 0) return undefined;
  const move = swept.find((s) => s.kind === 'move')?.operation;
  return { ...(move ? { move } : {}), cleaned: swept.flatMap((s) => s.done ?? [s.what]) };
}

function endAsTenant(e: MoveEnd) {
  return { model: e.model, shard: e.shard, region: e.region, database_name: e.database, schema_name: e.schema };
}

function phasesOf(p: Record<string, number> | undefined, online?: boolean): { phase: PhaseName; ms: number }[] {
  return (online ? ONLINE_PHASES : PHASES).filter((x) => p?.[x] !== undefined).map((x) => ({ phase: x, ms: p![x] }));
}

async function runMove(
  deps: MoveDeps,
  plan: MovePlan,
  prevStatus: 'active' | 'suspended' | string,
  prevDetail: string | null,
  started: number,
  resumed: MoveResult['resumed'],
  fastLoad: boolean,
): Promise<MoveResult> {
  const { db, fleet, config } = deps;
  const { phases, begin, done } = phaseClock(deps);

  begin('preflight');
  const pre = await preflight(deps, plan).catch((err) => {
    deps.onPhase?.({ phase: 'preflight', state: 'failed', detail: errorMessage(err) });
    throw err;
  });
  await preparePoolFence(fleet, config, plan.from).catch((err) => {
    throw new TenantctlError(
      'MOVE_FAILED',
      `installing the write-fence policies in ${plan.from.target} failed: ${errorMessage(err)}; nothing was changed`,
      'a long transaction may hold the pool tables: try again when it has ended',
    );
  });
  const rec = await MoveRecord.start(db, { plan, status: prevStatus as never, statusDetail: prevDetail, resumedFrom: resumed?.move });
  await done('preflight', rec, pre.targetMigrated.length ? `target migrated: ${pre.targetMigrated.join(', ')}` : undefined);
  await db.transaction().execute(async (tx) => {
    await updateTenant(tx, plan.tenant, { status: 'moving', status_detail: `moving to ${plan.to.target} (move ${rec.id})` });
    await recordEvent(tx, {
      command: deps.command,
      action: 'move started',
      result: 'started',
      tenant: plan.tenant,
      details: { move: rec.id, from: plan.from.target, to: plan.to.target, version: pre.version, targetMigrated: pre.targetMigrated },
    });
  });

  let fence: HeldFence | undefined;
  let switched = false;
  let checks: TableCheck[] = [];
  let targetBuild: TargetBuild | undefined;
  try {
    // The target first, made and migrated at the source's version while the tenant still writes.
    begin('build');
    targetBuild = await buildTarget(deps, plan, pre.atVersion, rec);
    await done('build', rec, targetBuild);

    begin('fence');
    // Recorded before it is taken: a kill right after leaves a fence the next command knows of.
    const frec = fenceRecordFor(plan.from, plan.key);
    await rec.update({ fence: frec });
    fence = await takeFence(fleet, frec);
    await rec.update({ fence: fence.record });
    await done('fence', rec);

    begin('copy');
    await rec.update({ targetCreated: true, rows: 0, bytes: 0 });
    const total = { rows: 0, bytes: 0 };
    checks = await fleet.withClient(plan.from.shard, plan.from.database, async (src) => {
      // ONE snapshot, taken after the fence: every committed write of the tenant is in it.
      await src.query('begin isolation level repeatable read read only');
      try {
        return await copyAndVerify(
          deps,
          plan,
          src,
          pre.tables,
          {
            onProgress: (p) => {
              total.rows = p.rows;
              total.bytes = p.bytes;
              deps.onProgress?.(p);
              void rec.heartbeat({ rows: p.rows, bytes: p.bytes }).catch(() => undefined);
            },
            afterTable: async (table) => {
              await rec.update({ rows: total.rows, bytes: total.bytes, lastTable: table });
              // The tests' pause: until killed, or until Ctrl-C (which the next line acts on).
              await faultPoint('move.copy', { signal: deps.signal });
              stopIfInterrupted(deps.signal);
            },
            beforeVerify: async (tgt, schema, tables) => {
              await done('copy', rec);
              begin('verify');
              await faultPoint('move.verify', { signal: deps.signal });
              if (faultAction('move.verify') === 'tamper') await tamperCopy(tgt, schema, tables, plan);
            },
            verified: async () => {
              await done('verify', rec);
            },
          },
          { fastLoad },
        );
      } finally {
        await src.query('rollback').catch(() => undefined);
      }
    });
    const rows = checks.reduce((n, c) => n + c.rows, 0);
    const bytes = checks.reduce((n, c) => n + c.bytes, 0);

    await keepSuspended(fleet, config, plan, prevStatus);
    begin('switch');
    // The source refuses the application's writes from here until complete or rollback.
    await placeSwitchFence(deps, rec, plan, pre.tables);
    await faultPoint('move.switch-fence', { signal: deps.signal });
    await recordSwitch(db, deps.command, plan, rec, checks, { status: prevStatus, detail: prevDetail });
    switched = true;
    await done('switch', rec);

    begin('unfence');
    await fence.lift();
    const writeBlockedMs = Date.now() - Date.parse(fence.record.at!);
    await rec.update({ fence: { ...fence.record, liftedAt: new Date().toISOString() }, writeBlockedMs });
    await done('unfence', rec);
    return {
      tenant: plan.tenant,
      status: 'switched',
      move: rec.id,
      from: plan.from,
      to: plan.to,
      version: pre.version,
      phases,
      tables: checks,
      rows,
      bytes,
      writeBlockedMs,
      targetBuild,
      targetMigrated: pre.targetMigrated,
      sharedNotCopied: pre.sharedNotCopied,
      resumed,
      names: namesAfter(config, plan.tenant, plan.to, plan.from),
      durationMs: Date.now() - started,
    };
  } catch (caught) {
    // A shard or the catalog gone mid-move: one error naming it (the next move or rollback cleans up).
    const err = lostConnectionError(caught, `the move of ${plan.tenant}`) ?? caught;
    const current = PHASES.find((p) => !phases.some((x) => x.phase === p)) ?? 'unfence';
    deps.onPhase?.({ phase: current, state: 'failed', detail: errorMessage(err) });
    const message = redactText(errorMessage(err));
    // Every exit path lifts the fence; a copy that never switched is removed.
    if (fence) await fence.lift().catch(() => undefined);
    if (!switched) await liftSwitchFence(deps, rec).catch(() => undefined);
    const blocked = fence?.record.at ? Date.now() - Date.parse(fence.record.at) : undefined;
    if (!switched) {
      if (rec.progress.targetCreated) await removeEnd(deps, plan.tenant, plan.key, plan.to, plan.from).catch(() => undefined);
      await db
        .transaction()
        .execute(async (tx) => {
          await updateTenant(tx, plan.tenant, { status: prevStatus as never, status_detail: prevDetail });
          await rec.update(
            {
              error: message,
              targetCreated: false,
              ...(fence ? { fence: { ...fence.record, liftedAt: new Date().toISOString() } } : {}),
              writeBlockedMs: blocked,
              ...(err instanceof TenantctlError && err.code === 'MOVE_VERIFY'
                ? { tables: (err as never as { checks: TableCheck[] }).checks }
                : {}),
            },
            isInterrupt(err) ? 'interrupted' : 'failed',
            tx,
          );
          await recordEvent(tx, {
            command: deps.command,
            action: isInterrupt(err) ? 'move interrupted' : 'move failed',
            result: 'failed',
            tenant: plan.tenant,
            details: { move: rec.id, from: plan.from.target, to: plan.to.target, error: message },
          });
        })
        .catch(() => undefined);
    }
    // The one rule (failure.ts): bad input, LOCKED and Ctrl-C end the command; the record and event are written above.
    if (endsCommand(err)) throw recordedFailure(err);
    return {
      tenant: plan.tenant,
      status: 'failed',
      move: rec.id,
      from: plan.from,
      to: plan.to,
      phases,
      writeBlockedMs: blocked,
      tables: err instanceof TenantctlError && err.code === 'MOVE_VERIFY' ? (err as never as { checks: TableCheck[] }).checks : undefined,
      resumed,
      durationMs: Date.now() - started,
      error: { code: err instanceof TenantctlError ? err.code : 'MOVE_FAILED', message },
    };
  }
}
export { ONLINE_PHASES, PHASES } from './types.js';
export type { MoveDeps, MoveOptions, MoveResult, PhaseEvent, PhaseName } from './types.js';
