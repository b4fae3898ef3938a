/**
 * Jobs run on a fixed set of connections, one job per connection at a time (a pg client runs one
 * statement at a time, and a job's transaction must not interleave with another's), the rest
 * queued in order. `settled` waits for every job started, failed or not, so no connection is
 * released while a statement still runs on it.
 *
 * @example
 *   const jobs = jobPool(spares);
 *   const d = jobs.run((c) => c.query('create index …'));
 *   … await d; … finally { await jobs.settled(); }
 */
export function jobPool<C>(clients: C[]): { run<T>(job: (c: C) => Promise<T>): Promise<T>; settled(): Promise<void> } {
  const free = [...clients];
  const waiting: ((c: C) => void)[] = [];
  const started: Promise<unknown>[] = [];
  const give = (c: C) => {
    const next = waiting.shift();
    if (next) next(c);
    else free.push(c);
  };
  return {
    run<T>(job: (c: C) => Promise<T>): Promise<T> {
      if (clients.length === 0) throw new Error('jobPool: no connection to run on');
      const p = (async () => {
        const c = free.pop() ?? (await new Promise<C>((resolve) => waiting.push(resolve)));
        try {
          return await job(c);
        } finally {
          give(c);
        }
      })();
      // Handled here so a job that fails while the caller is still busy elsewhere is no unhandled rejection; the caller awaits p.
      started.push(p.catch(() => undefined));
      return p;
    },
    async settled() {
      await Promise.all(started);
    },
  };
}
