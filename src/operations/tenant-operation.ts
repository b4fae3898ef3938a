import type { TenantRow } from '../catalog/tables.js';
import { sweepTenant } from './sweep.js';
import type { OperationDeps } from './command-deps.js';
import { findTenant, getTenant } from '../catalog/tenants.js';
import { recordEvent } from '../catalog/events.js';
import { redactText } from '../config/redact.js';
import { errorMessage, type ErrorCode, UsageError } from '../errors.js';
import { resultError } from './failure.js';
import { FAULT_POINTS, faultPoint, type FaultPointName } from './fault-points.js';
import { commandLine, InterruptedError, interruptSignal, isInterrupt, onInterrupt } from './interrupt.js';
import { startOperation, type OperationProgress, type OperationRecord } from './operation-record.js';
import { lockTenant, type TenantLock } from './tenant-lock.js';
import { locksLostError } from './lock-session.js';

/** What every per-tenant operation runs with: built once per command (src/cli/operation-deps.ts). */
export type { OperationDeps } from './command-deps.js';

export type OperationKind =
  | 'create'
  | 'delete'
  | 'backup'
  | 'restore'
  | 'move'
  | 'move complete'
  | 'move rollback'
  | 'suspend'
  | 'resume'
  | 'credentials';

export interface OperationSpec {
  kind: OperationKind;
  slug: string;
  /**
   * 'required' (default): the tenant must exist (exit 2 otherwise); 'optional': it may not (a
   * restore as a new tenant, a create). Read ONCE, under the lock, and handed to the body.
   */
  tenant?: 'required' | 'optional';
  /**
   * The caller already holds the tenant's lock and read its row (delete's final backup, restore's
   * safety backup): a nested operation takes no lock, reads nothing again, and leaves the message
   * of a Ctrl-C to the outer one.
   */
  held?: TenantRow;
  /**
   * The caller took the tenant's lock and read its row itself (a bulk run takes its tenants' locks
   * in batches, tenant-lock-batch.ts): the engine takes no lock and reads nothing, but runs the
   * rest as for any operation and releases `lock` at the end.
   */
  locked?: { lock: TenantLock; tenant: TenantRow | undefined };
  /**
   * By default the fleet's one sweep (src/operations/sweep.ts) runs first under the lock, so what
   * killed operations of this tenant left is cleaned before anything new starts; `false` skips it
   * (an operation that cleans its own kind of leftover itself), a function replaces it.
   */
  sweep?: false | ((tenant: TenantRow | undefined) => Promise<string[]>);
  /**
   * A leftover the sweep cannot clean is a warning, not the end of the command (sweep.ts): for a
   * verb that makes nothing a leftover could meet (a backup).
   */
  tolerateStuck?: boolean;
  /**
   * Start the operation's record with these args before the body runs (an operation whose body
   * makes things at once: create, delete, suspend, resume, credentials). The engine closes it
   * `succeeded` when the body returns without having closed it; a body that returns a failed
   * result closes it itself.
   */
  record?: Record<string, unknown>;
}

/** What the body of an operation gets from the engine. */
export interface OperationRun<P extends OperationProgress = OperationProgress> {
  readonly slug: string;
  /** The tenant's catalog row, read once under the lock (undefined only with tenant: 'optional'). */
  readonly tenant: TenantRow | undefined;
  readonly signal: AbortSignal;
  /** What the sweep cleaned first. */
  readonly swept: string[];
  /** The operation's record, once started. */
  readonly op: OperationRecord<P> | undefined;
  /** Start the operation's record: call it BEFORE anything is made, with what a sweep needs to undo it. */
  record(args: Record<string, unknown>, progress?: P): Promise<OperationRecord<P>>;
  /**
   * A record the body started itself, in the statement that made its first thing (create inserts
   * it with the tenant row): the engine owns it from here as if `record` had started it.
   */
  adopt(op: OperationRecord<P>): void;
  /**
   * A clean point between steps: stops the operation on Ctrl-C (InterruptedError), else records
   * `phase` and passes the fault point `<kind>.<phase>` when the registry names one.
   */
  step(phase: string, progress?: Partial<P>): Promise<void>;
  /** Throws SHARD_LOST when the tenant's lock went with a lost catalog session (step() checks it too). */
  readonly assertLocked: () => void;
  /** Note a step done, for the message of an interrupt (`what was done`). */
  did(what: string): void;
  /**
   * A failure the verb turns into its result row, by the one rule (failure.ts: bad input, LOCKED
   * and Ctrl-C are rethrown): the record ends failed (unless kept), the event is written; returns
   * the row's error. Call it after undoing what the failed step made.
   */
  fail(err: unknown, fallback: ErrorCode, details?: Record<string, unknown>): Promise<{ code: string; message: string }>;
}

/**
 * Run one per-tenant operation: take the tenant's lock (a conflict is LockedError, exit 3; with
 * `wait`, wait for it), read the tenant once, run the verb's sweep, run the body, and on Ctrl-C or
 * failure close the operation's record (interrupted / failed) and write the event. An interrupt
 * becomes one InterruptedError (exit 130) saying where it stopped, what was done and the exact
 * command that finishes it. The body undoes (or finishes) the step it was in, as its failure
 * path does; the engine decides nothing about the verb's data.
 *
 * @example
 *   await runTenantOperation(deps, { kind: 'backup', slug: 'acme', sweep }, async (run) => {
 *     await run.record({ backup: id });
 *     await run.step('copy');
 *     ...
 *   });
 */
export async function runTenantOperation<R, P extends OperationProgress = OperationProgress>(
  deps: OperationDeps,
  spec: OperationSpec,
  body: (run: OperationRun<P>) => Promise<R>,
): Promise<R> {
  const signal =
    deps.signal ??
    (spec.held
      ? interruptSignal()
      : onInterrupt(
          `interrupted: the ${spec.kind} of ${spec.slug} stops at its next clean point, finishing or undoing the step it is in`,
          deps.out,
        ));
  const lock = spec.held
    ? undefined
    : (spec.locked?.lock ??
      (await lockTenant(deps.db, spec.slug, { command: deps.command, wait: deps.wait, onWaiting: deps.onWaiting, signal })));
  try {
    const read = () => (spec.tenant === 'optional' ? findTenant(deps.db, spec.slug) : getTenant(deps.db, spec.slug));
    let tenant = spec.held ?? (spec.locked ? spec.locked.tenant : await read());
    // The one sweep (sweep.ts) first, under the lock: what killed operations of this tenant left
    // is cleaned before anything new starts. A nested operation's caller swept already.
    const swept =
      spec.held || spec.sweep === false
        ? []
        : spec.sweep
          ? await spec.sweep(tenant)
          : (await sweepTenant(deps, { slug: spec.slug }, { tolerateStuck: spec.tolerateStuck })).map((s) => s.what);
    // A sweep that cleaned something may have given the tenant its status back: read it again.
    if (swept.length > 0 && !spec.held) tenant = await read();
    const done: string[] = [];
    let op: OperationRecord<P> | undefined;
    let phase = 'start';
    const run: OperationRun<P> = {
      slug: spec.slug,
      tenant,
      signal,
      swept,
      get op() {
        return op;
      },
      async record(args, progress) {
        op = await startOperation<P>(deps.db, { kind: spec.kind, tenant: spec.slug, args, progress });
        return op;
      },
      adopt(started) {
        op = started;
      },
      async step(next, progress) {
        if (signal.aborted) throw new InterruptedError(`stopped before ${next}`);
        // The tenant's lock went with a lost catalog session: another command may act on it now.
        run.assertLocked();
        phase = next;
        await op?.phase(next, progress);
        const point = `${spec.kind}.${next}`;
        if (point in FAULT_POINTS) await faultPoint(point as FaultPointName, { signal });
        // Paused there by a test and interrupted: stop at this point.
        if (signal.aborted) throw new InterruptedError(`stopped at ${next}`);
      },
      assertLocked() {
        if (lock?.lost()) throw locksLostError(deps.db);
      },
      did(what) {
        done.push(what);
      },
      async fail(err, fallback, details = {}) {
        const e = resultError(err, fallback);
        if (op && !op.over && !op.keep) await op.finish('failed', { error: e.message } as unknown as Partial<P>).catch(() => undefined);
        await failedEvent(deps, spec, op, { ...details, error: e.message });
        return e;
      },
    };
    try {
      if (spec.record && !spec.held) await run.record(spec.record);
      const result = await body(run);
      if (spec.record && op && !op.over) await op.finish('succeeded');
      return result;
    } catch (err) {
      // A nested operation closes its own record; the outer one says what the interrupt stopped.
      const failure = await closeFailed(deps, spec, op, err, { phase: op?.progress.phase ?? phase, done });
      throw spec.held ? err : failure;
    }
  } finally {
    await lock?.release();
  }
}

const alreadyRecorded = new WeakSet<object>();

/**
 * A verb that keeps its own record (a move's, src/move/record.ts) closed it and wrote its event in
 * one transaction: the engine only rethrows the error (and words an interrupt).
 */
export function recordedFailure<E>(err: E): E {
  if (err && typeof err === 'object') alreadyRecorded.add(err);
  return err;
}

/**
 * The failure path the engine owns: the record (when the body left it running and did not mean to
 * keep it so) ends failed or interrupted, the event is written, and an interrupt is rewritten into
 * the one message: where it stopped, what was done, and the command that finishes it.
 */
async function closeFailed(
  deps: OperationDeps,
  spec: OperationSpec,
  op: OperationRecord | undefined,
  err: unknown,
  at: { phase: string; done: string[] },
): Promise<unknown> {
  const interrupted = isInterrupt(err);
  const message = redactText(errorMessage(err));
  if (op && !op.over && !op.keep) await op.finish(interrupted ? 'interrupted' : 'failed', { error: message }).catch(() => undefined);
  // Refused before it started anything (bad input, e.g. `tenant create` of an existing slug): the
  // tenant's history is what happened to it, and nothing did; the command's output says why.
  const refused = !op && err instanceof UsageError;
  if (!alreadyRecorded.has(err as object) && !refused) await failedEvent(deps, spec, op, { phase: at.phase, error: message }, interrupted);
  if (!interrupted) return err;
  const where = at.phase === 'start' ? '' : ` in ${at.phase}`;
  const done = at.done.length ? ` done: ${at.done.join('; ')};` : '';
  // The command that finishes it is in the message too: a fan-out's result row prints no hint.
  const finish = `to finish it, run: ${commandLine()}`;
  return new InterruptedError(`the ${spec.kind} of ${spec.slug} was interrupted${where};${done} ${message}; ${finish}`, finish);
}

async function failedEvent(
  deps: OperationDeps,
  spec: OperationSpec,
  op: OperationRecord | undefined,
  details: Record<string, unknown>,
  interrupted = false,
): Promise<void> {
  await recordEvent(deps.db, {
    command: deps.command,
    action: `${spec.kind} ${interrupted ? 'interrupted' : 'failed'}`,
    result: 'failed',
    tenant: spec.slug,
    details: { ...(op ? { operation: op.id } : {}), ...details },
  }).catch(() => undefined);
}
