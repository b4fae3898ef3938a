import { sql } from 'kysely';
import { findTenant } from '../../catalog/tenants.js';
import { MoveRecord, openMove, type MoveArgs, type MoveRow } from '../../move/record.js';
import { recoverMove } from '../../move/recover.js';
import { removeEnd } from '../../move/remove.js';
import { dropReplication, type ReplicationRecord } from '../../move/replication.js';
import { removeCapture } from '../../move/capture/remove.js';
import type { CaptureRecord } from '../../move/capture/install.js';
import type { Cleaner, Leftover, SweepDeps } from './types.js';

type Progress = {
  replication?: ReplicationRecord;
  capture?: CaptureRecord;
  targetCreated?: boolean;
  fence?: { liftedAt?: string };
};

/** The move records a dead move left something of (one tenant's, or all). */
function leftRecords(deps: SweepDeps, slug?: string) {
  let q = deps.db
    .selectFrom('operations')
    .select(['id', 'tenant_slug', 'status', 'progress', 'args'])
    .where('kind', '=', 'move')
    .where(
      sql<boolean>`status = 'running'
        or (status = 'switched' and progress -> 'fence' is not null and progress -> 'fence' ->> 'liftedAt' is null)
        or (status not in ('running', 'switched') and progress -> 'replication' is not null and progress -> 'replication' ->> 'droppedAt' is null)
        or (status <> 'running' and progress -> 'capture' is not null and progress -> 'capture' ->> 'removedAt' is null)
        or (status in ('rolled back', 'failed', 'interrupted') and (progress ->> 'targetCreated')::boolean)`,
    );
  if (slug) q = q.where('tenant_slug', '=', slug);
  return q.orderBy('id').execute();
}

function describe(r: { id: number | string; status: string; progress: unknown; args: unknown }): string {
  const p = r.progress as Progress;
  const to = (r.args as MoveArgs).plan.to.target;
  if (r.status === 'running') {
    const sw = (p as { switchFence?: { at?: string; liftedAt?: string; livesAt?: string } }).switchFence;
    // Killed between its switch fence and the catalog switch: the application is refused, told the
    // tenant lives where the catalog does not say it does (found by a helper: it re-resolved in a loop).
    if (sw?.at && !sw.liftedAt)
      return `move ${r.id} still running: its switch fence refuses the tenant's writes at the source, telling the application it lives at ${sw.livesAt ?? to}, which the catalog does not say yet (its copy at ${to} too)`;
    return `move ${r.id} still running (its copy at ${to}, fence, replication or capture)`;
  }
  if (r.status === 'switched') {
    // A pool's write fence is a lock of the killed session, gone with it (move status says so too).
    const kind = (p as { fence?: { kind?: string } }).fence?.kind;
    return kind === 'trigger'
      ? `move ${r.id}'s write fence still up at the source (the switch fence refuses its writes anyway)`
      : `move ${r.id}'s write fence recorded as up (its lock went with the killed process)`;
  }
  const parts = [
    ...(p.replication && !p.replication.droppedAt ? ['replication objects'] : []),
    ...(p.capture && !p.capture.removedAt ? ['capture triggers and change table'] : []),
    ...(p.targetCreated ? [`the copy at ${to}`] : []),
  ];
  return `move ${r.id} (${r.status}) left ${parts.join(', ')}`;
}

/**
 * What a killed move (or move rollback) leaves: a `running` move's fence, copy, replication or
 * capture objects and the tenant's `moving` status (undone by recoverMove); a switched move's
 * mover fence; a finished move's replication objects or capture that could not be dropped when
 * it ended (a shard did not answer, a table stayed locked), with the target they fed; a copy a
 * killed `move rollback` had not removed yet, or a failed move could not remove (a neighbour's
 * lock on the target pool's tables outlasted the cleanup's wait). A switched move awaiting `move complete` or
 * `move rollback` is not a leftover: only a fence its dead mover left up is.
 */
export const moveCleaner: Cleaner = {
  kind: 'move',
  async find(deps, slug) {
    return (await leftRecords(deps, slug)).map((r) => ({
      tenant: r.tenant_slug ?? '',
      kind: 'move',
      operation: Number(r.id),
      what: describe(r),
    }));
  },
  async clean(deps, slug, except) {
    const cleaned: Leftover[] = [];
    const open = await openMove(deps.db, slug);
    if (open && open.id !== except) {
      const { cleaned: done } = await recoverMove(deps, open);
      if (open.status === 'running' || done.length) {
        const what = `move ${open.id} of ${slug} was killed; ${done.join('; ') || 'nothing left behind'}`;
        cleaned.push({ tenant: slug, kind: 'move', operation: open.id, what, done });
      }
    }
    for (const r of await leftRecords(deps, slug)) {
      if (r.status === 'running' || r.status === 'switched') continue;
      const done = await cleanFinished(deps, slug, r);
      cleaned.push({ tenant: slug, kind: 'move', operation: Number(r.id), what: done.join('; '), done });
    }
    return cleaned;
  },
};

/**
 * A finished move's leftovers: its replication objects or capture (dropped first, with the
 * target they fed, which the catalog never pointed at), or the copy a killed rollback left,
 * unless the catalog points there again (the tenant was placed there since).
 */
async function cleanFinished(
  deps: SweepDeps,
  slug: string,
  r: { id: number | string; status: string; progress: unknown; args: unknown },
): Promise<string[]> {
  const progress = r.progress as Progress;
  const plan = (r.args as MoveArgs).plan;
  const done: string[] = [];
  const repl = progress.replication && !progress.replication.droppedAt ? progress.replication : undefined;
  if (repl) done.push(...(await dropReplication(deps.fleet, repl)));
  if (progress.capture && !progress.capture.removedAt) done.push(...(await removeCapture(deps.fleet, progress.capture)));
  if (progress.targetCreated) {
    const now = await findTenant(deps.db, slug);
    const there = now && now.shard === plan.to.shard && now.database_name === plan.to.database && now.schema_name === plan.to.schema;
    if (!there) {
      await removeEnd(deps, plan.tenant, plan.key, plan.to, plan.from);
      done.push(
        r.status === 'rolled back'
          ? `removed the copy at ${plan.to.target} that a killed move rollback left`
          : `removed the partial copy at ${plan.to.target}`,
      );
    }
  }
  const at = new Date().toISOString();
  const row = { id: Number(r.id), args: r.args, progress: r.progress } as MoveRow;
  await MoveRecord.of(deps.db, row).update({
    targetCreated: false,
    ...(progress.replication ? { replication: { ...progress.replication, droppedAt: progress.replication.droppedAt ?? at } } : {}),
    ...(progress.capture ? { capture: { ...progress.capture, removedAt: progress.capture.removedAt ?? at } } : {}),
  });
  return done;
}
