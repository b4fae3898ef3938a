import type pg from 'pg';
import { errorMessage } from '../errors.js';
import { isConnectionError } from '../fleet/fleet.js';
import { literal } from '../sql.js';
import type { MigrationFile } from './files.js';
import type { TargetSession } from './target-session.js';
import type { KnownState, TargetOutcome } from './target-types.js';
import { appliedRowsSql, recordAppliedSql, rowsOfApplied, TRACKING, versionOf } from './tracking.js';

/** Errors this path raises on purpose (a cast of a volatile text to int). */
const BUSY_MARKER = 'tenantctl:lock-busy:';
const CHANGED_MARKER = 'tenantctl:state-changed:';

/**
 * The whole target in one message: try the lock, check that the target still has the applied
 * count the caller read, then each pending migration with its tracking row in its own
 * transaction, then unlock. Returns null to take the step-by-step path instead (not eligible,
 * lock busy, state changed, or a retryable error such as a lock timeout); a real failure is
 * reported as precisely as the step-by-step path would (what committed is read back, and the
 * error position is mapped into the failing file).
 */
export async function applyInOneRoundTrip(s: TargetSession, known: KnownState): Promise<TargetOutcome | null> {
  const pending = known.pending;
  if (!s.hooks.canFuse || pending.length === 0 || (known.applied.length === 0 && !known.tracked)) return null;
  if (pending.some((m) => m.kind !== 'sql' || !m.transactional)) return null;
  const schema = literal(s.target.schema);
  let text = `select case when ${s.tryLockSql()} then 0 else ('${BUSY_MARKER}' || random())::int end;\n`;
  const parts: { m: MigrationFile; offset: number; sql: string }[] = [];
  for (const [i, m] of pending.entries()) {
    // Settings and (first) the guard in one SELECT: every statement costs a result to parse.
    // The guard runs in a statement after the lock's, so it reads what committed before it.
    // The schema must exist: otherwise search_path would fall through to public.
    const guard =
      i === 0
        ? `, case when (select count(*) from ${TRACKING} where target_schema = ${schema}) = ${known.applied.length} ` +
          `and exists (select 1 from pg_namespace where nspname = ${schema}) then 0 ` +
          `else ('${CHANGED_MARKER}' || random())::int end`
        : '';
    text += `begin; ${s.settingsSelect()}${guard};\n`;
    const sql = s.sqlOf(m);
    parts.push({ m, offset: text.length, sql });
    // The newline ends a trailing line comment of the file.
    text += `${sql}\n;\n${recordAppliedSql(s.target.schema, m)}; commit;\n`;
  }
  text += s.unlockSql();
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
    // The guard failed before anything of ours ran: another run got there first. Re-read.
    if (errorMessage(err).includes(CHANGED_MARKER)) return null;
    // Past the guard, under our lock, every new row is ours.
    const committed = new Set(rowsOfApplied(res[res.length - 1].rows).map((r) => r.name));
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
