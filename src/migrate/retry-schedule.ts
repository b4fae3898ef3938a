/**
 * When a migration that failed on a lock (lock timeout, deadlock, serialization failure) is tried
 * again. Pure, so the schedule is tested without a database (test/unit/retry-schedule.test.ts).
 *
 * Why short attempts, many of them: while a DDL statement waits for its lock, every later query
 * on that table queues behind it, so each attempt costs the application up to one lock timeout.
 * Many short attempts with gaps between them let the application's queries through; the gaps
 * are jittered so that targets retrying at once do not stay in step.
 */

/** The first gap before a retry (tests shorten it with MigrateTargetOptions.retryBaseMs). */
export const RETRY_BASE_MS = 200;
/** No gap is longer: the table may free up at any moment, and the attempts are cheap. */
export const RETRY_CAP_MS = 5_000;

export interface RetryPlan {
  /** migrations.retries: attempts after the first, per migration. */
  retries: number;
  /** migrations.lockTimeout: the longest one attempt waits for a lock. */
  lockTimeoutMs: number;
  baseMs: number;
  capMs: number;
}

export type RetryDecision = { retry: true; delayMs: number } | { retry: false; why: 'spent' | 'deadline' };

/**
 * The gap before retry `n` (1 for the first retry): "equal jitter" over an exponential step,
 * `e = min(cap, base·2^(n-1))`, the gap in [e/2, e]. Never zero, so the queries that queued
 * behind a timed-out attempt run before the next one.
 *
 * @example retryDelayMs(1, plan, () => 0) // 100 with base 200
 */
export function retryDelayMs(n: number, plan: Pick<RetryPlan, 'baseMs' | 'capMs'>, random: () => number = Math.random): number {
  const step = Math.min(plan.capMs, plan.baseMs * 2 ** Math.max(0, n - 1));
  return Math.round(step / 2 + (random() * step) / 2);
}

/**
 * Whether attempt `attempt` (1-based), which just failed on a lock, gets another: retries are
 * left, and the next attempt, its gap and its longest lock wait included, ends before the
 * target's deadline (migrations.targetTimeout). Otherwise why not.
 *
 * @example nextRetry(1, plan, Date.now(), deadline) // { retry: true, delayMs: 137 }
 */
export function nextRetry(
  attempt: number,
  plan: RetryPlan,
  now: number,
  deadline: number,
  random: () => number = Math.random,
): RetryDecision {
  if (attempt > plan.retries) return { retry: false, why: 'spent' };
  const delayMs = retryDelayMs(attempt, plan, random);
  if (now + delayMs + plan.lockTimeoutMs > deadline) return { retry: false, why: 'deadline' };
  return { retry: true, delayMs };
}
