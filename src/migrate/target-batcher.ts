import type { Fleet } from '../fleet/fleet.js';
import { applyBatch, type BatchMember } from './apply-batch.js';
import type { TargetOutcome } from './target-types.js';

/** A `migrate up` of at least this many targets that fit one message sends several per message. */
export const BATCH_FROM = 256;
/**
 * Targets per message at most (each still its own transaction). 64 rather than 16: a message's
 * write wakes the backend and this process, and at 5,000 targets those writes and their results
 * were the largest part of node's profile (writeBuffer 1.2 s, GC 1.2 s of a round at 16). 128
 * rather than 64 (with 256 tenants locked ahead, not 128): 40 messages per 5,000 targets instead of
 * 80, and half the lock session's statements; 6 interleaved pairs (bench/lib/cpu-ab.sh) took
 * node's CPU down 6.7%, the catalog's 8.6% and the tenant database's 3.5%, lower in every pair.
 */
export const BATCH_SIZE = 128;

interface Queued {
  member: BatchMember;
  resolve: (o: TargetOutcome | null) => void;
  reject: (err: unknown) => void;
}

interface Queue {
  shard: string;
  database: string;
  items: Queued[];
  /** A sender is waiting for a slot for this queue. */
  waiting: boolean;
}

/**
 * The connections of a `migrate up` fan-out that sends several targets per message. The fan-out
 * runs up to `size` times as many targets at once (each under its tenant's lock); every target
 * that fits one message is queued by database, and whenever a slot of its shard is free, up to
 * `size` queued targets go in one message (applyBatch). Targets that take their own path
 * (`withSlot`) use the same slots, so a shard never has more connections in use than its width,
 * nor the fleet more than the run's concurrency. Nothing waits to fill a batch: a lone target is
 * sent alone.
 */
export class TargetBatcher {
  private readonly queues = new Map<string, Queue>();
  private readonly slots: Slots;

  constructor(
    private readonly fleet: Fleet,
    readonly size: number,
    width: (shard: string) => number,
    concurrency: number,
  ) {
    this.slots = new Slots(width, concurrency);
  }

  /** The member's outcome from a shared message, or null: it takes its own path (withSlot). */
  submit(shard: string, member: BatchMember): Promise<TargetOutcome | null> {
    const key = `${shard}\u0000${member.target.database}`;
    let q = this.queues.get(key);
    if (!q) {
      q = { shard, database: member.target.database, items: [], waiting: false };
      this.queues.set(key, q);
    }
    const queue = q;
    return new Promise((resolve, reject) => {
      queue.items.push({ member, resolve, reject });
      if (!queue.waiting) void this.send(queue);
    });
  }

  /** fn with one of the shard's slots (a target on its own path). */
  async withSlot<T>(shard: string, fn: () => Promise<T>): Promise<T> {
    await this.slots.acquire(shard);
    try {
      return await fn();
    } finally {
      this.slots.release(shard);
    }
  }

  private async send(q: Queue): Promise<void> {
    q.waiting = true;
    await this.slots.acquire(q.shard);
    // A slot is freed as a message's results come back, and those results start the next targets
    // a few promise hops later: taken at once, the queue held one of them, which went alone, and
    // every other message was a single target (127 messages for 5,000 targets instead of 80).
    // One turn of the event loop lets them queue; nothing waits for a batch to fill.
    if (q.items.length < this.size) await new Promise<void>((resolve) => setImmediate(resolve));
    q.waiting = false;
    const batch = q.items.splice(0, this.size);
    // What is left waits for the next slot (one sender waits per queue).
    if (q.items.length > 0) void this.send(q);
    try {
      if (batch.length === 0) return;
      // Interrupted while queued: each member's own path reports it.
      const live = batch.filter((b) => !b.member.opts.signal?.aborted);
      for (const b of batch) if (b.member.opts.signal?.aborted) b.resolve(null);
      if (live.length === 0) return;
      try {
        const outcomes = await this.fleet.withLeafClient(q.shard, q.database, (c) =>
          applyBatch(
            c,
            live.map((b) => b.member),
          ),
        );
        live.forEach((b, i) => b.resolve(outcomes[i]));
      } catch (err) {
        for (const b of live) b.reject(err);
      }
    } finally {
      this.slots.release(q.shard);
    }
  }
}

/** Counting slots per shard and across the fleet, handed out first come, first served. */
class Slots {
  private readonly used = new Map<string, number>();
  private total = 0;
  private readonly waiters: { shard: string; go: () => void }[] = [];

  constructor(
    private readonly width: (shard: string) => number,
    private readonly concurrency: number,
  ) {}

  acquire(shard: string): Promise<void> {
    if (this.free(shard)) {
      this.take(shard);
      return Promise.resolve();
    }
    return new Promise((go) => this.waiters.push({ shard, go }));
  }

  release(shard: string): void {
    this.used.set(shard, (this.used.get(shard) ?? 1) - 1);
    this.total--;
    const i = this.waiters.findIndex((w) => this.free(w.shard));
    if (i < 0) return;
    const [w] = this.waiters.splice(i, 1);
    this.take(w.shard);
    w.go();
  }

  private free(shard: string): boolean {
    return this.total < this.concurrency && (this.used.get(shard) ?? 0) < this.width(shard);
  }

  private take(shard: string): void {
    this.used.set(shard, (this.used.get(shard) ?? 0) + 1);
    this.total++;
  }
}
