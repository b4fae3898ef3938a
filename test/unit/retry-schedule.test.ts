import { describe, expect, it } from 'vitest';
import { durationMs, parseConfig } from '../../src/config/load.js';
import { nextRetry, RETRY_BASE_MS, RETRY_CAP_MS, retryDelayMs, type RetryPlan } from '../../src/migrate/retry-schedule.js';

/**
 * The retry schedule of a migration that fails on a lock: gaps within their jitter bounds, and
 * a table that stays busy costs at most `retries + 1` attempts, all inside the target's time.
 */

/** The schedule's defaults from a config that sets nothing under `migrations`. */
function defaults(): RetryPlan & { targetTimeoutMs: number } {
  const c = parseConfig(
    'catalog:\n  shard: us1\nregions:\n  r:\n    shards:\n      us1:\n        url: postgres://a:b@h/postgres\n',
    '/x.yaml',
    {},
  );
  return {
    retries: c.migrations.retries,
    lockTimeoutMs: durationMs(c.migrations.lockTimeout),
    baseMs: RETRY_BASE_MS,
    capMs: RETRY_CAP_MS,
    targetTimeoutMs: durationMs(c.migrations.targetTimeout),
  };
}

/**
 * A table that never frees up: every attempt waits its full lock timeout. The attempts made and
 * when the last one ended, from t = 0.
 */
function simulate(plan: RetryPlan, deadline: number, random: () => number): { attempts: number; end: number; gaps: number[] } {
  let now = 0;
  const gaps: number[] = [];
  for (let attempt = 1; ; attempt++) {
    now += plan.lockTimeoutMs;
    const next = nextRetry(attempt, plan, now, deadline, random);
    if (!next.retry) return { attempts: attempt, end: now, gaps };
    gaps.push(next.delayMs);
    now += next.delayMs;
  }
}

describe('retry schedule', () => {
  it('defaults to short lock waits and more retries: 1s, 10 retries, 30min for the target', () => {
    const d = defaults();
    expect(d.lockTimeoutMs).toBe(1000);
    expect(d.retries).toBe(10);
    expect(d.targetTimeoutMs).toBe(30 * 60_000);
  });

  it('keeps each gap within its jitter bounds: [step/2, step], step = min(cap, base·2^(n-1))', () => {
    const plan = { baseMs: 200, capMs: 5000 };
    for (let n = 1; n <= 12; n++) {
      const step = Math.min(5000, 200 * 2 ** (n - 1));
      expect(retryDelayMs(n, plan, () => 0)).toBe(step / 2);
      expect(retryDelayMs(n, plan, () => 0.999999)).toBe(step);
      for (let i = 0; i < 50; i++) {
        const d = retryDelayMs(n, plan);
        expect(d).toBeGreaterThanOrEqual(step / 2);
        expect(d).toBeLessThanOrEqual(step);
      }
    }
    // Never zero: the queries that queued behind a timed-out attempt get their turn first.
    expect(retryDelayMs(1, { baseMs: 1, capMs: 1 }, () => 0)).toBeGreaterThan(0);
  });

  it('gaps are jittered, so targets retrying at once drift apart', () => {
    const seen = new Set(Array.from({ length: 40 }, () => retryDelayMs(3, { baseMs: 200, capMs: 5000 })));
    expect(seen.size).toBeGreaterThan(10);
  });

  it('with the defaults, a table that stays busy fails after retries + 1 attempts, well inside targetTimeout', () => {
    const d = defaults();
    for (const random of [() => 0, () => 0.999999, Math.random]) {
      const r = simulate(d, d.targetTimeoutMs, random);
      expect(r.attempts).toBe(d.retries + 1);
      // Worst case: 11 lock waits of 1s and gaps of at most 0.2+0.4+0.8+1.6+3.2+5·5 s.
      expect(r.end).toBeLessThanOrEqual(11 * 1000 + 31_200);
      expect(r.end).toBeLessThan(d.targetTimeoutMs);
      expect(r.gaps.every((g) => g >= d.baseMs / 2 && g <= d.capMs)).toBe(true);
    }
  });

  it("stops at the target's deadline: no attempt starts that could not finish its lock wait in time", () => {
    const plan: RetryPlan = { retries: 100, lockTimeoutMs: 1000, baseMs: 200, capMs: 5000 };
    for (const deadline of [1000, 2500, 10_000, 60_000]) {
      // Constant draws: the check below draws again, and Math.random could draw a shorter gap that fits.
      for (const random of [() => 0, () => 0.5, () => 0.999999]) {
        const r = simulate(plan, deadline, random);
        expect(r.end).toBeLessThanOrEqual(deadline);
        expect(r.attempts).toBeLessThanOrEqual(plan.retries + 1);
        expect(nextRetry(r.attempts, plan, r.end, deadline, random)).toEqual({ retry: false, why: 'deadline' });
      }
    }
    // More retries than the time allows: the time decides (60 s fits 13 attempts, not 101).
    const long = simulate(plan, 60_000, () => 0.999999);
    expect(long.attempts).toBe(13);
  });

  it('says why it stopped: retries spent, or the deadline', () => {
    const plan: RetryPlan = { retries: 2, lockTimeoutMs: 1000, baseMs: 200, capMs: 5000 };
    expect(nextRetry(1, plan, 0, 60_000, () => 0)).toEqual({ retry: true, delayMs: 100 });
    expect(nextRetry(2, plan, 0, 60_000, () => 0)).toEqual({ retry: true, delayMs: 200 });
    expect(nextRetry(3, plan, 0, 60_000, () => 0)).toEqual({ retry: false, why: 'spent' });
    expect(nextRetry(1, plan, 0, 1099, () => 0)).toEqual({ retry: false, why: 'deadline' });
    expect(nextRetry(1, plan, 0, 1100, () => 0)).toEqual({ retry: true, delayMs: 100 });
    expect(nextRetry(1, { ...plan, retries: 0 }, 0, 60_000)).toEqual({ retry: false, why: 'spent' });
  });
});
