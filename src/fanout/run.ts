import { errorMessage, TenantctlError } from '../errors.js';
import { redactText } from '../config/redact.js';
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
 * input order. fn returns a result; if it throws anyway, the item is reported as failed. Items
 * start in input order as slots free up (the earliest waiting item whose shard has room).
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
  onThrow: (item: T, err: unknown) => R = (item, err) =>
    ({
      ...notRun(item, 'error'),
      status: 'failed',
      reason: undefined,
      // A typed error keeps its code (a refusal is not an internal error).
      error: { code: err instanceof TenantctlError ? err.code : 'INTERNAL', message: redactText(errorMessage(err)) },
    }) as R,
): Promise<R[]> {
  const results = new Array<R>(items.length);
  if (items.length === 0) return results;
  const concurrency = Math.max(1, opts.concurrency);
  const maxFailures = opts.maxFailures ?? (opts.onError === 'continue' ? Infinity : 1);
  // Items wait as indexes in one queue per shard (input order), not as a promise each: a fan-out
  // over 10,000 targets holds no per-item closures while it waits.
  const queues = new Map<string, { items: number[]; head: number; running: number; budget: number }>();
  items.forEach((item, i) => {
    const shard = opts.shardOf(item);
    let q = queues.get(shard);
    if (!q) {
      q = { items: [], head: 0, running: 0, budget: Math.max(1, opts.shardBudget(shard)) };
      queues.set(shard, q);
    }
    q.items.push(i);
  });
  let running = 0;
  let settled = 0;
  let failures = 0;
  let stopReason: string | null = null;

  return new Promise<R[]>((resolve, reject) => {
    const finish = (i: number, r: R) => {
      results[i] = r;
      if (++settled === items.length) resolve(results);
    };
    const pump = () => {
      if (opts.signal?.aborted) stopReason = stopReason ?? 'interrupted';
      if (stopReason) {
        // No new items: everything still waiting is reported as not run, in input order.
        const left: number[] = [];
        for (const q of queues.values()) while (q.head < q.items.length) left.push(q.items[q.head++]);
        for (const i of left.sort((a, b) => a - b)) finish(i, notRun(items[i], stopReason));
        return;
      }
      while (running < concurrency) {
        // The earliest waiting item whose shard has room: a global slot only goes to such an item.
        let pick: { q: { items: number[]; head: number; running: number; budget: number }; i: number } | null = null;
        for (const q of queues.values()) {
          if (q.head < q.items.length && q.running < q.budget && (!pick || q.items[q.head] < pick.i)) pick = { q, i: q.items[q.head] };
        }
        if (!pick) return;
        pick.q.head++;
        start(pick.i, pick.q);
      }
    };
    const start = (i: number, q: { running: number }) => {
      running++;
      q.running++;
      const item = items[i];
      opts.onStart?.(item);
      void (async () => {
        let r: R;
        try {
          r = await fn(item);
        } catch (err) {
          r = onThrow(item, err);
        }
        const counts = opts.countsAsFailure ? opts.countsAsFailure(r) : r.status === 'failed';
        if (counts && ++failures >= maxFailures && !stopReason) {
          stopReason =
            opts.maxFailures !== undefined
              ? `not run: ${failures} failure(s) reached --max-failures`
              : 'not run: an earlier target failed (--on-error stop)';
          opts.onStop?.(stopReason, failures);
        }
        opts.onResult?.(item, r);
        running--;
        q.running--;
        finish(i, r);
        pump();
      })().catch(reject);
    };
    pump();
  });
}
