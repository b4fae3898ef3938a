/**
 * The fan-out's waiting items: one queue of input indexes per shard, and the rule for which one
 * starts next when a global slot frees up.
 *
 * The next item is the head of the shard with the fewest items running among those with work
 * waiting and room under their own budget; ties go to the earliest input index. Picking the
 * earliest item overall instead lets whichever shard comes first in tenant order take every
 * global slot (its budget is usually above the global bound), so the other shards sit idle with
 * work queued until it drains, and a slow shard keeps winning each slot it frees. With this rule
 * each shard gets its share of the global bound as long as it has work: shards run independently.
 *
 * @example
 *   const q = new ShardQueues(items, (i) => i.shard, () => 10);
 *   const next = q.next(); // an index into items, or null when nothing may start now
 *   q.done(next);
 */
export class ShardQueues<T> {
  private readonly queues = new Map<string, ShardQueue>();
  /** The shard queue of each started item, to release its slot. */
  private readonly started = new Map<number, ShardQueue>();

  constructor(items: T[], shardOf: (item: T) => string, shardBudget: (shard: string) => number) {
    items.forEach((item, i) => {
      const shard = shardOf(item);
      let q = this.queues.get(shard);
      if (!q) {
        q = { items: [], head: 0, running: 0, budget: Math.max(1, shardBudget(shard)) };
        this.queues.set(shard, q);
      }
      // Indexes, not closures: a fan-out over 10,000 targets holds no per-item promise while it waits.
      q.items.push(i);
    });
  }

  /** The item to start now (taken off its queue and counted as running), or null. */
  next(): number | null {
    let pick: ShardQueue | null = null;
    for (const q of this.queues.values()) {
      if (q.head >= q.items.length || q.running >= q.budget) continue;
      if (!pick || q.running < pick.running || (q.running === pick.running && q.items[q.head] < pick.items[pick.head])) pick = q;
    }
    if (!pick) return null;
    const i = pick.items[pick.head++];
    pick.running++;
    this.started.set(i, pick);
    return i;
  }

  /** A started item ended: its shard has room again. */
  done(i: number): void {
    const q = this.started.get(i);
    if (!q) return;
    q.running--;
    this.started.delete(i);
  }

  /** Every item still waiting, in input order, taken off the queues (they will not run). */
  drain(): number[] {
    const left: number[] = [];
    for (const q of this.queues.values()) while (q.head < q.items.length) left.push(q.items[q.head++]);
    return left.sort((a, b) => a - b);
  }
}

interface ShardQueue {
  items: number[];
  head: number;
  running: number;
  budget: number;
}
