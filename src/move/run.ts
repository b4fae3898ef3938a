import { ONLINE_PHASES, PHASES, type MoveDeps, type MoveOptions, type MoveResult, type PhaseName } from './types.js';
import { getTenant, tenantCountsByShard } from '../catalog/tenants.js';
import { UsageError } from '../errors.js';
import { runTenantOperation } from '../operations/tenant-operation.js';
import { assertSlug } from '../placement/slug.js';
import { planMove, type MoveEnd } from './plan.js';
import { runMove } from './offline-run.js';
import { plannedBuild } from './build-target.js';
import { openMove } from './record.js';
import { sweepTenant, type Leftover } from '../operations/sweep.js';
import { onlinePreflight } from './online-preflight.js';
import { runOnline } from './online-start.js';
import { namesNow } from './names-now.js';

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
    deps = { ...deps, signal: run.signal, assertLocked: run.assertLocked };
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
        ...(p.foreignKeyCheck ? { foreignKeyCheck: p.foreignKeyCheck } : {}),
        rows: p.rows,
        bytes: p.bytes,
        writeBlockedMs: p.writeBlockedMs,
        resumed,
        names: await namesNow(deps, slug, open.args.plan.to, open.args.plan.from),
        // The switched move's own time (its phases), which writesBlockedMs is part of; not this
        // run's, which only read the record ("writes blocked 727 ms of 144 ms").
        durationMs: Object.values(p.phases ?? {}).reduce((a, b) => a + b, 0) || Date.now() - started,
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
    return runMove(deps, plan, { status: t.status, detail: t.status_detail }, started, resumed, {
      fastLoad: Boolean(o.fastLoad),
      lockWaitMs: o.lockWaitMs,
    });
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

export { ONLINE_PHASES, PHASES } from './types.js';
export type { MoveDeps, MoveOptions, MoveResult, PhaseEvent, PhaseName } from './types.js';
