import { describe, expect, it } from 'vitest';
import { jobPool } from '../../src/fanout/job-pool.js';

const tick = () => new Promise((r) => setTimeout(r, 5));

describe('jobPool', () => {
  it('runs one job per connection at a time, the rest in order as connections come free', async () => {
    const jobs = jobPool(['a', 'b']);
    const busy = new Set<string>();
    const order: number[] = [];
    let most = 0;
    const out = await Promise.all(
      [1, 2, 3, 4, 5].map((n) =>
        jobs.run(async (c) => {
          expect(busy.has(c)).toBe(false);
          busy.add(c);
          most = Math.max(most, busy.size);
          order.push(n);
          await tick();
          busy.delete(c);
          return n * 10;
        }),
      ),
    );
    expect(out).toEqual([10, 20, 30, 40, 50]);
    expect(order).toEqual([1, 2, 3, 4, 5]);
    expect(most).toBe(2);
  });

  it('settled waits for every job, a failed one too, and the caller sees a failure', async () => {
    const jobs = jobPool(['a']);
    let slowDone = false;
    const failed = jobs.run(async () => {
      throw new Error('boom');
    });
    jobs.run(async () => {
      await tick();
      slowDone = true;
    });
    await jobs.settled();
    expect(slowDone).toBe(true);
    await expect(failed).rejects.toThrow('boom');
  });

  it('refuses a job with no connection to run it on', () => {
    expect(() => jobPool([]).run(async () => 1)).toThrow(/no connection/);
  });
});
