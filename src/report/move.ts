import { foreignKeysLine } from './foreign-keys.js';
import type { Output } from './output.js';
import { escapeControl } from './escape.js';
import { renderTable } from './table.js';
import { mb } from './backup.js';
import type { MoveResult, PhaseEvent, PhaseName } from '../move/run.js';
import { ONLINE_PHASES, PHASES } from '../move/run.js';
import type { MoveStatusResult } from '../move/status.js';
import type { CompleteResult } from '../move/complete.js';
import type { RollbackResult } from '../move/rollback.js';
import type { NamesAfter } from '../move/names.js';

/**
 * Live view of a move: on a TTY a listr2 task per phase (the copy's title shows rows, bytes and
 * an ETA from the source's row estimate); off a TTY one plain line per phase on stderr; nothing
 * with --quiet or --json.
 */
export interface MoveView {
  onPhase(e: PhaseEvent): void;
  onProgress(p: { table: string; rows: number; bytes: number }): void;
  close(): Promise<void>;
}

export function moveView(out: Output, slug: string, online = false): MoveView {
  const phases = online ? ONLINE_PHASES : PHASES;
  if (out.quiet) return { onPhase() {}, onProgress() {}, close: async () => {} };
  // --json: the document on stdout, the phases as lines on stderr (as every fan-out's progress),
  // never the live view, which would share the terminal with the document.
  if (!out.tty || out.json) {
    let last = 0;
    return {
      onPhase(e) {
        if (e.state === 'start') return;
        out.info(
          `move ${slug}: ${e.phase} ${e.state === 'done' ? `done (${e.ms} ms)` : 'FAILED'}${e.detail ? `: ${escapeControl(e.detail)}` : ''}`,
        );
      },
      onProgress(p) {
        if (Date.now() - last < 5000) return;
        last = Date.now();
        out.info(`move ${slug}: copy ${p.rows} rows, ${mb(p.bytes)} (${escapeControl(p.table)})`);
      },
      close: async () => {},
    };
  }
  type D = { promise: Promise<PhaseEvent>; resolve: (e: PhaseEvent) => void };
  const deferred = new Map<PhaseName, D>(
    phases.map((p) => {
      let resolve!: (e: PhaseEvent) => void;
      const promise = new Promise<PhaseEvent>((r) => (resolve = r));
      return [p, { promise, resolve }];
    }),
  );
  let copy = { rows: 0, bytes: 0, table: '' };
  const copyStarted = { at: 0 };
  const run = import('listr2')
    .then(({ Listr, ListrLogger, ProcessOutput }) =>
      new Listr(
        phases.map((phase) => ({
          title: phase,
          task: async (_ctx: unknown, task: { title: string; output: string }) => {
            const timer =
              phase === 'copy'
                ? setInterval(() => {
                    if (!copyStarted.at) copyStarted.at = Date.now();
                    const s = (Date.now() - copyStarted.at) / 1000;
                    task.title = `copy: ${copy.rows} rows, ${mb(copy.bytes)}${copy.table ? ` (${escapeControl(copy.table)})` : ''}${s > 0 ? `, ${Math.round(copy.rows / s)} rows/s` : ''}`;
                  }, 200)
                : undefined;
            const e = await deferred.get(phase)!.promise;
            if (timer) clearInterval(timer);
            if (e.state === 'failed') throw new Error(`${phase}: ${e.detail ?? 'failed'}`);
            task.title = `${phase === 'copy' ? `copy: ${copy.rows} rows, ${mb(copy.bytes)}` : phase} (${e.ms} ms)${e.detail ? `: ${escapeControl(e.detail)}` : ''}`;
          },
        })),
        {
          renderer: 'default',
          exitOnError: true,
          rendererOptions: {
            collapseErrors: false,
            logger: new ListrLogger({ processOutput: new ProcessOutput(process.stderr, process.stderr) }),
          },
          registerSignalListeners: false,
        },
      ).run(),
    )
    .catch(() => undefined);
  return {
    onPhase(e) {
      if (e.state !== 'start') deferred.get(e.phase)?.resolve(e);
      if (e.state === 'failed') for (const d of deferred.values()) d.resolve({ phase: e.phase, state: 'failed', detail: 'not run' });
    },
    onProgress(p) {
      copy = p;
    },
    async close() {
      for (const [phase, d] of deferred) d.resolve({ phase, state: 'failed', detail: 'not run' });
      await run;
    },
  };
}

export function renderMove(out: Output, command: string, r: MoveResult): void {
  const ok = r.status !== 'failed';
  if (out.json) return out.document({ command, ok, ...r });
  if (r.resumed)
    out.print(
      `cleaned up ${r.resumed.move ? `the killed move ${r.resumed.move}` : 'what killed operations left'}: ${r.resumed.cleaned.join('; ') || 'nothing left behind'}`,
    );
  if (r.status === 'planned') {
    out.print(
      `move ${r.tenant} (dry run): ${r.from.model} ${r.from.target} (${r.from.region}) → ${r.to.model} ${r.to.target} (${r.to.region})`,
    );
    out.print(`phases: ${(r.online ? ONLINE_PHASES : PHASES).join(', ')}; the source stays until tenantctl move complete ${r.tenant}`);
    if (r.targetBuild && r.targetBuild !== 'shared pool')
      out.print(`the target is built ${r.targetBuild} at the tenant's migration version before its writes are fenced`);
    if (r.onlineVia === 'replication') out.print('online via logical replication');
    if (r.onlineVia === 'triggers') {
      out.print(`online via trigger capture (logical replication is not possible: ${escapeControl(r.notReplication ?? 'unknown')})`);
    }
    return;
  }
  if (r.tables?.length) {
    out.print(
      renderTable(
        out,
        ['table', 'rows', 'bytes', 'source hash', 'target hash', 'match'],
        r.tables.map((t) => [
          t.table,
          t.rows,
          t.bytes,
          t.source.hash,
          t.target.hash,
          t.source.hash === t.target.hash && t.source.rows === t.target.rows ? 'yes' : 'NO',
        ]),
      ),
    );
  }
  if (r.sharedNotCopied?.length) out.print(`shared, not copied (the target has its own): ${r.sharedNotCopied.join(', ')}`);
  if (!ok) {
    out.print(out.color.red(`move ${r.tenant} failed: ${r.error?.message ?? 'unknown error'}`));
    if (r.error?.hint) out.print(`hint: ${r.error.hint}`);
    return;
  }
  out.print(
    out.color.green(
      `moved ${r.tenant}${r.online ? ' online' : ''}: ${r.from.target} → ${r.to.target} (${r.rows ?? 0} rows, ${mb(r.bytes ?? 0)}, writes blocked ${r.writeBlockedMs ?? 0} ms of ${r.durationMs} ms${r.online ? ` for the last catch-up${r.onlineVia === 'triggers' ? ', via trigger capture' : ''}` : ''})`,
    ),
  );
  if (r.warning) out.print(out.color.yellow(`warning: ${escapeControl(r.warning)}`));
  if (r.foreignKeyCheck) out.print(foreignKeysLine(r.foreignKeyCheck));
  if (r.verifiedUnderFence)
    out.print(
      `proven before the fence; compared under it: ${r.verifiedUnderFence.rows} rows changed since${r.verifiedUnderFence.tables.length ? ` (${r.verifiedUnderFence.tables.join(', ')})` : ''}`,
    );
  if (r.names) out.print(namesLine(r.tenant, r.names));
  out.print(
    `the source is kept, refusing writes: tenantctl move complete ${r.tenant} removes it, tenantctl move rollback ${r.tenant} goes back`,
  );
}

/** The names the application uses now, and whether they are the ones it used before. */
function namesLine(slug: string, n: NamesAfter, back = false): string {
  const line = namesOnly(slug, n, back);
  return n.passwordNeeded ? `${line}\n${passwordNeededLine(slug, n)}` : line;
}

/** The role a move made has no password yet: what the application meets, and the command that ends it. */
export function passwordNeededLine(slug: string, n: Pick<NamesAfter, 'role' | 'shard'>): string {
  return `role ${n.role} on shard ${n.shard} was made by the move and has no password (none carries over between clusters, and a pool tenant had no role): its application cannot log in until tenantctl tenant credentials ${slug} gives it one`;
}

function namesOnly(slug: string, n: NamesAfter, back: boolean): string {
  const names = `database ${n.database}, schema ${n.schema}, role ${n.role} on shard ${n.shard}`;
  if (n.unchanged) return `the application keeps its names: ${names} (only the host differs: tenantctl resolve ${slug})`;
  // After a rollback these are the names from before the move, not new ones.
  return back
    ? `the application goes back to its names from before the move: ${names} (tenantctl resolve ${slug})`
    : `the application connects with new names: ${names} (tenantctl resolve ${slug})`;
}

/** What the status line says of a fence not recorded lifted: up, gone with its process, or unknown. */
function fenceNote(f: { at?: string; liftedAt?: string; up: boolean | null } | null, status: string, switchUp: boolean): string {
  if (!f || f.liftedAt || !f.at) return '';
  // The switch fence outlives the process whatever the write fence did (a pool's went with it).
  if (f.up === false && switchUp) return ' (the write fence went with its process; the switch fence below still refuses writes)';
  // Switched: the application writes at the target; the source's fence is lifted with its copy.
  if (f.up === true && status === 'switched')
    return ' (until the switch; the source keeps its write fence until move complete or rollback)';
  if (f.up === true) return ' (fence still up)';
  if (f.up === false) return ' (the fence went with its process: writes go through)';
  return ' (fence state unknown: its shard does not answer)';
}

/** What the target holds: a removed copy's rows are not reported as copied. */
function copyLine(m: NonNullable<MoveStatusResult['move']>): string {
  if (m.copy === 'removed') return `copy removed${m.removedRows ? ` (it had ${m.removedRows} rows)` : ''}`;
  if (m.copy === 'left') return `its copy${m.removedRows ? ` (${m.removedRows} rows)` : ''} is removed by the tenant's next command`;
  return `copied ${m.rows} rows, ${mb(m.bytes)}`;
}

export function renderMoveStatus(out: Output, command: string, s: MoveStatusResult): void {
  if (out.json) return out.document({ command, ok: true, ...s });
  out.print(`${s.tenant}: ${s.tenantStatus} at ${s.at}`);
  const m = s.move;
  if (!m) return out.print('no move recorded');
  const switchUp = Boolean(m.switchFence?.at && !m.switchFence.liftedAt);
  out.print(`move ${m.id}${m.online ? ' (online)' : ''}: ${m.status}${m.live === false ? ' (its process is gone)' : ''}, phase ${m.phase}`);
  out.print(`  ${m.from.model} ${m.from.target} → ${m.to.model} ${m.to.target}`);
  out.print(
    `  ${copyLine(m)}; writes blocked ${m.writeBlockedMs === null ? 'not yet' : `${m.writeBlockedMs} ms`}${fenceNote(m.fence, m.status, switchUp)}`,
  );
  const done = (m.online ? ONLINE_PHASES : PHASES).filter((p) => m.phases[p] !== undefined);
  if (done.length) out.print(`  phases: ${done.map((p) => `${p} ${m.phases[p]} ms`).join(', ')}`);
  if (m.foreignKeyCheck) out.print(`  ${foreignKeysLine(m.foreignKeyCheck)}`);
  if (switchUp)
    out.print(
      `  the source ${m.from.target} refuses writes since ${m.switchFence!.at}${
        m.status === 'running' && m.live === false
          ? `, telling the application it has moved to ${m.to.target}, which the catalog does not say yet (killed before the catalog switched)`
          : ''
      }`,
    );
  if (m.error) out.print(out.color.red(`  error: ${escapeControl(m.error)}`));
  out.print(`  next: ${m.next}`);
}

export function renderComplete(out: Output, command: string, r: CompleteResult): void {
  if (out.json) return out.document({ command, ok: true, ...r });
  out.print(`move ${r.move} of ${r.tenant} completed: removed ${r.removed.model} ${r.removed.target}; it lives at ${r.at.target}`);
  if (!r.sourceUnchanged)
    out.print(out.color.yellow('writes made at the source after the switch were discarded (--discard-source-writes)'));
  out.print(namesLine(r.tenant, r.names));
}

export function renderRollback(out: Output, command: string, r: RollbackResult): void {
  if (out.json) return out.document({ command, ok: true, ...r });
  out.print(
    `move ${r.move} of ${r.tenant} rolled back: it lives at ${r.at.target} again; removed the copy at ${r.removed.target}${r.cleaned.length ? ` (${r.cleaned.join('; ')})` : ''}`,
  );
  out.print(namesLine(r.tenant, r.names, true));
  if (r.versions)
    out.print(
      out.color.yellow(
        `the source is at ${r.versions.source ?? 'no migration'}, not ${r.versions.before ?? 'no migration'} (the copy was migrated after the switch): tenantctl migrate up --tenant ${r.tenant} brings it forward`,
      ),
    );
}
