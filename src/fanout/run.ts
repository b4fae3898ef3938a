import pLimit, { type LimitFunction } from 'p-limit';
import { errorMessage } from '../errors.js';
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
  /** Aborting stops scheduling; items already running finish. */
  signal?: AbortSignal;
  onStart?: (item: T) => void;
  onResult?: (item: T, result: TenantResult) => void;
}

/**
 * Run fn over items with a global bound and a per-shard bound, collecting one result per item in
 * input order. fn returns a result; if it throws anyway, the item is reported as failed.
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
    ({ ...notRun(item, 'error'), status: 'failed', reason: undefined, error: { code: 'INTERNAL', message: redactText(errorMessage(err)) } }) as R,
): Promise<R[]> {
  const global = pLimit(Math.max(1, opts.concurrency));
  const perShard = new Map<string, LimitFunction>();
  const shardLimit = (shard: string) => {
    let l = perShard.get(shard);
    if (!l) {
      l = pLimit(Math.max(1, opts.shardBudget(shard)));
      perShard.set(shard, l);
    }
    return l;
  };
  let failures = 0;
  let stopReason: string | null = null;
  const maxFailures = opts.maxFailures ?? (opts.onError === 'continue' ? Infinity : 1);

  const results = await Promise.all(
    items.map((item) =>
      // Shard bound outside the global one, so a slot of the global bound is only taken by an
      // item whose shard has room.
      shardLimit(opts.shardOf(item))(() =>
        global(async () => {
          if (opts.signal?.aborted) stopReason = stopReason ?? 'interrupted';
          if (stopReason) return notRun(item, stopReason);
          opts.onStart?.(item);
          let r: R;
          try {
            r = await fn(item);
          } catch (err) {
            r = onThrow(item, err);
          }
          if (r.status === 'failed' && ++failures >= maxFailures) {
            stopReason =
              opts.maxFailures !== undefined ? `not run: ${failures} failure(s) reached --max-failures` : 'not run: an earlier target failed (--on-error stop)';
          }
          opts.onResult?.(item, r);
          return r;
        }),
      ),
    ),
  );
  return results;
}
