import { errorMessage, TenantctlError } from '../errors.js';
import { redactText } from '../config/redact.js';
import { ShardQueues } from './queues.js';
import type { TenantResult } from './result.js';

export type OnError = 'stop' | 'continue';

export interface FanoutOptions<T> {
  /** Global bound on items in flight. */
  concurrency: number;
  /** Which shard an item runs against; each shard has its own bound. */
  shardOf: (item: T) => string;
  /** The shard's connection budget: no more items of one shard run at once than this. */
  shardBudget: (shard: string) => number;
  /** stop (default): no new items after a failure; running ones finish; the rest are not run. */
  onError?: OnError;
  /** Stop scheduling once this many items failed (implies continue until then). */
  maxFailures?: number;
  /**
   * Whether a result counts for onError/maxFailures (default: every failed one). `migrate up`
   * leaves out unreachable shards: the stop policy is about migrations that fail.
   */
  countsAsFailure?: (result: TenantResult) => boolean;
  /** Called once when the failure policy stops scheduling, with the failures counted so far. */
  onStop?: (reason: string, failures: number) => void;
  /** Aborting stops scheduling; items already running finish. */
  signal?: AbortSignal;
  onStart?: (item: T) => void;
  onResult?: (item: T, result: TenantResult) => void;
}

/**
 * Run fn over items with a global bound and a per-shard bound, collecting one result per item in
 * input order. fn returns a result; if it throws anyway, the item is reported as failed. Each
 * shard gets its share of the global slots while it has work (ShardQueues: the shard with the
 * fewest running first, then input order), so no shard waits behind another's queue. Each result
 * of an item that ran carries its startedAt and finishedAt (ISO times), for per-shard spreads.
 *
 * @example
 *   const results = await fanout(targets, { concurrency: 8, shardOf: (t) => t.shard,
 *     shardBudget: () => 10 }, migrateOne, (t, reason) => ({ tenant: t.slug, status: 'skipped', reason }));
 */
export async function fanout<T, R extends TenantResult>(
  items: T[],
  opts: FanoutOptions<T>,
  fn: (item: T) => Promise<R>,
  notRun: (item: T, reason: string) => R,
  onThrow: (item: T, err: unknown) => R = (item, err) => thrownResult(notRun(item, 'error'), err),
): Promise<R[]> {
  const results = new Array<R>(items.length);
  if (items.length === 0) return results;
  const concurrency = Math.max(1, opts.concurrency);
  const queues = new ShardQueues(items, opts.shardOf, opts.shardBudget);
  const policy = failurePolicy(opts);
  let running = 0;
  let settled = 0;

  return new Promise<R[]>((resolve, reject) => {
    const finish = (i: number, r: R) => {
      results[i] = r;
      if (++settled === items.length) resolve(results);
    };
    const pump = () => {
      if (opts.signal?.aborted) policy.interrupt();
      const stopReason = policy.stopReason();
      if (stopReason) {
        // No new items: everything still waiting is reported as not run, in input order.
        for (const i of queues.drain()) finish(i, notRun(items[i], stopReason));
        return;
      }
      while (running < concurrency) {
        const i = queues.next();
        if (i === null) return;
        start(i);
      }
    };
    const start = (i: number) => {
      running++;
      const item = items[i];
      opts.onStart?.(item);
      void (async () => {
        const startedAt = new Date();
        let r: R;
        try {
          r = await fn(item);
        } catch (err) {
          r = onThrow(item, err);
        }
        r.startedAt = startedAt.toISOString();
        r.finishedAt = new Date().toISOString();
        policy.record(r);
        opts.onResult?.(item, r);
        running--;
        queues.done(i);
        finish(i, r);
        pump();
      })().catch(reject);
    };
    pump();
  });
}

/** The result of an item whose fn threw: failed, a typed error keeping its code. */
function thrownResult<R extends TenantResult>(base: R, err: unknown): R {
  return {
    ...base,
    status: 'failed',
    reason: undefined,
    // A typed error keeps its code (a refusal is not an internal error).
    error: {
      code: err instanceof TenantctlError ? err.code : 'INTERNAL',
      message: redactText(errorMessage(err)),
      // What to do about it (LOCKED: --wait), printed under the table as a single run prints it.
      ...(err instanceof TenantctlError && err.hint ? { hint: redactText(err.hint) } : {}),
    },
  };
}

/** onError / maxFailures / countsAsFailure / Ctrl-C: whether scheduling has stopped, and why. */
function failurePolicy<T>(opts: FanoutOptions<T>) {
  const maxFailures = opts.maxFailures ?? (opts.onError === 'continue' ? Infinity : 1);
  let failures = 0;
  let reason: string | null = null;
  return {
    stopReason: () => reason,
    interrupt: () => {
      reason = reason ?? 'interrupted';
    },
    record: (r: TenantResult) => {
      const counts = opts.countsAsFailure ? opts.countsAsFailure(r) : r.status === 'failed';
      if (counts && ++failures >= maxFailures && !reason) {
        reason =
          opts.maxFailures !== undefined
            ? `not run: ${failures} failure(s) reached --max-failures`
            : 'not run: an earlier target failed (--on-error stop)';
        opts.onStop?.(reason, failures);
      }
    },
  };
}
