import { existsSync, writeFileSync } from 'node:fs';
import { UsageError } from '../errors.js';
import { interruptSignal } from './interrupt.js';

/**
 * Every named point where a test may stop an operation, in ONE registry: the crash and Ctrl-C
 * tests choose a point by name (TENANTCTL_FAULT, read here and nowhere else), and the table-driven
 * SIGKILL test (test/integration/fault-kill.test.ts) has one row per point. Adding a point is a
 * line here and a row there.
 *
 * TENANTCTL_FAULT=<point>[:<action>]. Actions:
 *  - `pause` (default): wait until the process is killed or interrupted (Ctrl-C/SIGTERM), then go on,
 *    so the operation's next checkpoint acts on the interrupt; with TENANTCTL_FAULT_PAUSED_FILE
 *    set, the point's name is written there once paused (a test kills the process then);
 *  - `fail`: throw there (an injected failure);
 *  - `sleep`: wait 1.5 s (the tenant keeps writing meanwhile);
 *  - `resume`: wait until the file TENANTCTL_FAULT_RESUME_FILE exists (a test stops a shard meanwhile);
 *  - anything else is read by the code at that point (`faultAction`), e.g. `move.verify:tamper`.
 */
export const FAULT_POINTS = {
  'create.prepared': 'tenant create: the placement is prepared (a database model: its database and role made)',
  'create.migrated': 'tenant create: the migrations ran, the catalog not yet active',
  'delete.backed-up': 'tenant delete: the final backup is written, nothing deleted yet',
  'delete.removed': 'tenant delete: the placement is removed, the catalog row not yet',
  'backup.copy': 'backup create: the snapshot is open and the archive begun, before the tables are copied',
  'backup.written': 'backup create: every file written, the archive not yet published',
  'restore.fenced': 'restore --replace: the live tenant is fenced, the safety backup not yet taken',
  'restore.safety-backup': 'restore --replace: the safety backup is written, the load not begun',
  'restore.loaded': 'restore: rows loaded and checked, before the load commits',
  'restore.committed': 'restore: the placement committed, the catalog not yet written',
  'restore.switched': 'restore --replace: switched and recorded, the replaced placement not yet dropped',
  'move.after-preflight': 'move: preflight recorded done',
  'move.after-build': 'move (offline): the target is built at the source version',
  'move.after-fence': 'move: the write fence is up',
  'move.copy': 'move: after the first table is copied (online: the initial sync is done)',
  'move.after-copy': 'move: the copy is recorded done',
  'move.after-catch-up': 'move (online): the fenced catch-up is done',
  'move.verify':
    'move: before verification (action `tamper` alters a target row, `tamper-missing` deletes one; `tamper-keep-replication` also keeps the replication objects)',
  'move.after-verify': 'move: verified',
  'move.before-commit': 'move into a pool: verified, the target transaction still open',
  'move.switch-fence': 'move: the source switch fence is up, the catalog not yet switched',
  'move.after-switch': 'move: the catalog points at the target, the fence not yet lifted',
  'pitr.recovery': 'restore --at: the scratch cluster is started and recovering, nothing loaded',
  'move-rollback.before-remove': 'move rollback: the catalog points back at the source, the copy not yet removed',
} as const;

export type FaultPointName = keyof typeof FAULT_POINTS;

interface ActiveFault {
  point: FaultPointName;
  action: string;
}

let parsed: ActiveFault | null | undefined;

/** The fault the environment asks for (read once), or null. An unknown point is bad input. */
export function activeFault(): ActiveFault | null {
  if (parsed !== undefined) return parsed;
  const raw = process.env.TENANTCTL_FAULT;
  if (!raw) return (parsed = null);
  const [point, action = 'pause'] = raw.split(':');
  if (!(point in FAULT_POINTS)) {
    throw new UsageError('BAD_INPUT', `TENANTCTL_FAULT names no fault point "${point}"`, `one of: ${Object.keys(FAULT_POINTS).join(', ')}`);
  }
  return (parsed = { point: point as FaultPointName, action });
}

/** The action asked for at `point` (the env's, or `override` from an in-process test), or undefined. */
export function faultAction(point: FaultPointName, override?: string): string | undefined {
  if (override) return override.split(':')[0] === point ? (override.split(':')[1] ?? 'pause') : undefined;
  const f = activeFault();
  return f?.point === point ? f.action : undefined;
}

/**
 * A named fault point: does nothing unless a test asked for it (see FAULT_POINTS). `signal` is
 * the operation's interrupt signal (default: the process's).
 */
export async function faultPoint(point: FaultPointName, o: { signal?: AbortSignal; override?: string } = {}): Promise<void> {
  const action = faultAction(point, o.override);
  if (!action) return;
  // A plain error, as an unexpected failure there would be.
  if (action === 'fail') throw new Error(`injected failure at ${point}`);
  if (action === 'sleep') return void (await new Promise((r) => setTimeout(r, 1500)));
  if (action === 'resume') {
    const file = process.env.TENANTCTL_FAULT_RESUME_FILE;
    while (file && !existsSync(file)) await new Promise((r) => setTimeout(r, 100));
    return;
  }
  if (action !== 'pause') return;
  const signal = o.signal ?? interruptSignal();
  if (signal.aborted) return;
  const marker = process.env.TENANTCTL_FAULT_PAUSED_FILE;
  if (marker) writeFileSync(marker, point);
  await new Promise<void>((resolve) => {
    // A timer keeps the event loop alive while paused (nothing else may).
    const keep = setInterval(() => {}, 1000);
    signal.addEventListener(
      'abort',
      () => {
        clearInterval(keep);
        resolve();
      },
      { once: true },
    );
  });
}
