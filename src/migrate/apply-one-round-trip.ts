import type pg from 'pg';
import { errorMessage } from '../errors.js';
import { isConnectionError } from '../fleet/fleet.js';
import type { TargetSession } from './target-session.js';
import type { KnownState, TargetOutcome } from './target-types.js';
import type { MigrationHooks } from '../placement/drivers.js';
import { META_SCHEMA } from '../placement/naming.js';
import { appliedRowsSql, rowsOfApplied, TRACKING_TABLE, versionOf } from './tracking.js';
import { CHANGED_MARKER, type FilePart, TransactionsText } from './apply-text.js';

/** Errors this path raises on purpose (a cast of a volatile text to int). */
const BUSY_MARKER = 'tenantctl:lock-busy:';

/**
 * The whole target in one message: try the lock (none under the tenant's lock), check that the
 * target is still as the caller read it, then each pending migration with its tracking row in
 * its own transaction, then unlock. Returns null to take the step-by-step path instead (not eligible,
 * lock busy, state changed, or a retryable error such as a lock timeout); a real failure is
 * reported as precisely as the step-by-step path would (what committed is read back, and the
 * error position is mapped into the failing file).
 */
export async function applyInOneRoundTrip(s: TargetSession, known: KnownState): Promise<TargetOutcome | null> {
  const pending = known.pending;
  if (!fitsOneMessage(s.hooks, known)) return null;
  const { text, parts } = messageOf(s, known);
  s.event('start', pending[0]);
  const t0 = Date.now();
  try {
    await s.client.query(text);
  } catch (err) {
    if (errorMessage(err).includes(BUSY_MARKER)) return null;
    if (isConnectionError(err)) throw err;
    // The lock is held and a transaction may be open: close both, and read what committed.
    s.locked = true;
    s.txOpen = true;
    const res = (await s.client.query(`rollback; ${s.unlockSql()}; ${appliedRowsSql(s.target.schema)}`)) as unknown as pg.QueryResult[];
    s.locked = false;
    s.txOpen = false;
    // The schema is gone, or another run recorded a pending migration first (its tracking row
    // collides with ours, after our transaction ran the file and before it committed): nothing
    // of ours committed. Re-read on the step-by-step path.
    if (errorMessage(err).includes(CHANGED_MARKER) || isTrackingCollision(err)) return null;
    const committed = new Set(rowsOfApplied(res[res.length - 1].rows).map((r) => r.name));
    // Every pending migration is recorded and yet the message failed: another run applied them
    // between the caller's read and this message, and the file failed here on what it had done
    // (a column that already exists). Ours commit in order, each after the one before, so
    // otherwise the recorded ones are ours (runs that bring a target only part of the way take
    // its tenant's lock, which this target holds).
    if (pending.every((m) => committed.has(m.id))) return null;
    for (const m of pending) if (committed.has(m.id)) s.applied.push(m.id);
    const failing = pending.find((m) => !committed.has(m.id));
    const part = parts.find((x) => x.m === failing);
    const e = err as { position?: string };
    if (part && e.position !== undefined) {
      const pos = Number(e.position) - part.offset;
      if (pos >= 1 && pos <= part.sql.length)
        Object.assign(err as object, { position: String(pos), tenantctlSql: part.sql, tenantctlLine: 1 });
      else delete e.position;
    }
    // A lock timeout (or deadlock) is this migration's first attempt: after the schedule's gap,
    // the step-by-step path makes the next, from a new transaction. Any other error ends here.
    let failure: unknown = err;
    try {
      await s.afterFailedAttempt(err, failing);
      return null;
    } catch (stop) {
      failure = stop;
    }
    return s.outcome('failed', {
      error: s.toError(failure, failing),
      pending: pending.map((m) => m.id).filter((id) => !committed.has(id)),
      unknown: [...known.unknown],
      version: versionOf([...known.applied, ...s.applied]),
    });
  }
  const ms = Date.now() - t0;
  for (const m of pending) {
    s.applied.push(m.id);
    s.event('done', m, ms);
  }
  return s.outcome('succeeded', { unknown: [...known.unknown], version: versionOf([...known.applied, ...s.applied]) });
}

/**
 * Whether a target with this state can go in one message: a model that allows it, something
 * pending, a tracking table to record it in, and only transactional SQL files.
 */
export function fitsOneMessage(hooks: Pick<MigrationHooks, 'canFuse'>, known: KnownState): boolean {
  const pending = known.pending;
  if (!hooks.canFuse || pending.length === 0 || (known.applied.length === 0 && !known.tracked)) return false;
  return pending.every((m) => m.kind === 'sql' && m.transactional);
}

/**
 * The message: the target's transactions (TransactionsText), and, when not under the tenant's
 * lock, a try-lock before them (its guard then runs in a later statement, so it reads what
 * committed before the lock) and the unlock after.
 */
export function messageOf(s: TargetSession, known: KnownState): { text: string; parts: FilePart[] } {
  const parts: FilePart[] = [];
  const txs = new TransactionsText(known.pending, (m) => s.sqlOf(m), s.otherSettings(), known.timed);
  const lock = s.tenantLocked ? '' : `select case when ${s.tryLockSql()} then 0 else ('${BUSY_MARKER}' || random())::int end;\n`;
  let text = txs.append(lock, s.target.schema, parts);
  if (!s.tenantLocked) text += `\n${s.unlockSql()}`;
  return { text, parts };
}

/** The tracking row's primary key refused ours: the migration was recorded by someone else. */
function isTrackingCollision(err: unknown): boolean {
  const e = err as { code?: string; table?: string; schema?: string };
  return e.code === '23505' && e.table === TRACKING_TABLE && e.schema === META_SCHEMA;
}
