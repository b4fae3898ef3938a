import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { LockedError } from '../../src/errors.js';
import { fanout } from '../../src/fanout/run.js';
import { exitCodeForRefusals, resultDocument, type TenantResult } from '../../src/fanout/result.js';
import { createOutput } from '../../src/report/output.js';
import { renderResultDocument } from '../../src/report/results.js';

interface Item {
  id: number;
  shard: string;
  fail?: boolean;
  ms?: number;
}

const notRun = (i: Item, reason: string): TenantResult => ({ tenant: String(i.id), status: 'skipped', reason });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Runs items, recording how many ran at once overall and per shard, and the start order. */
function tracker() {
  let now = 0;
  const perShard = new Map<string, number>();
  const peak = { all: 0, shard: new Map<string, number>() };
  const started: number[] = [];
  const fn = async (i: Item): Promise<TenantResult> => {
    started.push(i.id);
    now++;
    perShard.set(i.shard, (perShard.get(i.shard) ?? 0) + 1);
    peak.all = Math.max(peak.all, now);
    peak.shard.set(i.shard, Math.max(peak.shard.get(i.shard) ?? 0, perShard.get(i.shard)!));
    await sleep(i.ms ?? 2);
    now--;
    perShard.set(i.shard, perShard.get(i.shard)! - 1);
    if (i.fail) return { tenant: String(i.id), status: 'failed', error: { code: 'X', message: 'boom' } };
    return { tenant: String(i.id), status: 'succeeded' };
  };
  return { fn, peak, started };
}

describe('fanout', () => {
  const items = (n: number, shards = ['a', 'b', 'c']): Item[] =>
    Array.from({ length: n }, (_, id) => ({ id, shard: shards[id % shards.length] }));

  it('keeps the global and per-shard bounds and returns one result per item in input order', async () => {
    const t = tracker();
    const all = items(60);
    const budget: Record<string, number> = { a: 1, b: 2, c: 5 };
    const results = await fanout(all, { concurrency: 4, shardOf: (i) => i.shard, shardBudget: (s) => budget[s] }, t.fn, notRun);
    expect(results.map((r) => r.tenant)).toEqual(all.map((i) => String(i.id)));
    expect(results.every((r) => r.status === 'succeeded')).toBe(true);
    expect(t.peak.all).toBe(4);
    expect(t.peak.shard.get('a')).toBe(1);
    expect(t.peak.shard.get('b')).toBe(2);
    expect(t.peak.shard.get('c')!).toBeLessThanOrEqual(4);
  });

  it('a full shard does not hold up the others', async () => {
    const t = tracker();
    const all: Item[] = [...Array.from({ length: 5 }, (_, id) => ({ id, shard: 'slow', ms: 30 })), { id: 5, shard: 'fast' }];
    await fanout(all, { concurrency: 4, shardOf: (i) => i.shard, shardBudget: (s) => (s === 'slow' ? 1 : 4) }, t.fn, notRun);
    expect(t.started.slice(0, 2)).toEqual([0, 5]);
  });

  it('shards share the global slots: the shard first in input order does not take them all', async () => {
    const t = tracker();
    // Tenant order puts every item of shard a before any of b; both budgets are above the global bound.
    const all: Item[] = Array.from({ length: 12 }, (_, id) => ({ id, shard: id < 6 ? 'a' : 'b' }));
    await fanout(all, { concurrency: 4, shardOf: (i) => i.shard, shardBudget: () => 10 }, t.fn, notRun);
    expect(t.started.slice(0, 4)).toEqual([0, 6, 1, 7]);
    expect(t.peak.shard.get('a')).toBe(2);
    expect(t.peak.shard.get('b')).toBe(2);
  });

  it('a slow shard does not collect the slots a fast shard frees', async () => {
    const t = tracker();
    // Interleaved: a slow (even ids), b fast (odd ids). Earliest-first handed every slot b freed
    // to a's next item, so b waited with work queued until a slow item ended.
    const all: Item[] = Array.from({ length: 20 }, (_, id) => (id % 2 === 0 ? { id, shard: 'a', ms: 150 } : { id, shard: 'b' }));
    const results = await fanout(all, { concurrency: 4, shardOf: (i) => i.shard, shardBudget: () => 10 }, t.fn, notRun);
    const fifthA = t.started.filter((id) => id % 2 === 0)[4];
    const lastB = t.started.filter((id) => id % 2 === 1).at(-1)!;
    expect(t.started.indexOf(lastB)).toBeLessThan(t.started.indexOf(fifthA));
    // Every item that ran says when: the spread per shard comes from these.
    const b = results.filter((_, i) => i % 2 === 1);
    const a = results.filter((_, i) => i % 2 === 0);
    expect(Date.parse(b.at(-1)!.finishedAt!)).toBeLessThan(Date.parse(a[0].finishedAt!));
    expect(results.every((r) => Date.parse(r.startedAt!) <= Date.parse(r.finishedAt!))).toBe(true);
  });

  it('stop (default): no new items after a failure, running ones finish, the rest are not run', async () => {
    const t = tracker();
    const all = items(10, ['a']);
    all[3].fail = true;
    const results = await fanout(all, { concurrency: 2, shardOf: (i) => i.shard, shardBudget: () => 2 }, t.fn, notRun);
    expect(results[3].status).toBe('failed');
    expect(results.slice(6).every((r) => r.status === 'skipped' && /--on-error stop/.test(r.reason!))).toBe(true);
    expect(t.started.length).toBeLessThanOrEqual(5);
  });

  it('continue runs everything; max-failures stops after that many', async () => {
    const all = items(12, ['a']).map((i) => ({ ...i, fail: i.id % 3 === 0 }));
    const cont = await fanout(all, { concurrency: 1, shardOf: () => 'a', shardBudget: () => 1, onError: 'continue' }, tracker().fn, notRun);
    expect(cont.filter((r) => r.status === 'failed')).toHaveLength(4);
    const capped = await fanout(all, { concurrency: 1, shardOf: () => 'a', shardBudget: () => 1, maxFailures: 2 }, tracker().fn, notRun);
    expect(capped.map((r) => r.status)).toEqual(['failed', 'succeeded', 'succeeded', 'failed', ...Array(8).fill('skipped')]);
    expect(capped[4].reason).toBe('not run: 2 failure(s) reached --max-failures');
  });

  it('an aborted signal stops scheduling; items that throw are failed results; an empty list is fine', async () => {
    const ac = new AbortController();
    const t = tracker();
    const run = fanout(
      items(20, ['a']),
      { concurrency: 2, shardOf: (i) => i.shard, shardBudget: () => 2, signal: ac.signal },
      t.fn,
      notRun,
    );
    await sleep(1);
    ac.abort();
    const results = await run;
    expect(results.filter((r) => r.reason === 'interrupted').length).toBeGreaterThan(10);
    const thrown = await fanout(
      [{ id: 1, shard: 'a' }],
      { concurrency: 1, shardOf: () => 'a', shardBudget: () => 1 },
      async () => {
        throw new Error('postgres://u:secret@h/db broke');
      },
      notRun,
    );
    expect(thrown[0]).toMatchObject({ status: 'failed', error: { code: 'INTERNAL' } });
    expect(thrown[0].error!.message).not.toContain('secret');
    expect(await fanout([], { concurrency: 1, shardOf: () => 'a', shardBudget: () => 1 }, tracker().fn, notRun)).toEqual([]);
  });

  it("a thrown error's hint is kept in its row and printed once under the table (LOCKED: --wait)", async () => {
    const results = await fanout(
      [
        { id: 1, shard: 'a' },
        { id: 2, shard: 'a' },
      ],
      { concurrency: 2, shardOf: () => 'a', shardBudget: () => 2, onError: 'continue' },
      async (i) => {
        throw new LockedError(`tenant "${i.id}" is locked by another tenantctl process`);
      },
      notRun,
    );
    expect(results[0].error).toMatchObject({ code: 'LOCKED', hint: 'wait for it to finish, or pass --wait' });
    let text = '';
    const stdout = new Writable({
      write(chunk, _enc, done) {
        text += String(chunk);
        done();
      },
    });
    renderResultDocument(
      createOutput({ stdout: stdout as never, stderr: stdout as never, env: {} }),
      resultDocument('backup create', results, Date.now()),
    );
    expect(text.match(/^hint: wait for it to finish, or pass --wait$/gm)).toHaveLength(1);
  });

  it('every tenant on a shard that does not answer is exit 1 (failed), not 2 (refused input); every tenant refused is 2', () => {
    const doc = (code: string) =>
      resultDocument('backup create', [{ tenant: 'a', status: 'failed', error: { code, message: 'x' } }] as TenantResult[], Date.now());
    const usage = (code: string) => ['UNREACHABLE', 'UNDECLARED_TABLE'].includes(code);
    expect(exitCodeForRefusals(doc('UNREACHABLE'), usage)).toBe(1);
    expect(exitCodeForRefusals(doc('UNDECLARED_TABLE'), usage)).toBe(2);
  });

  it('a callback that throws rejects the fan-out instead of hanging', async () => {
    await expect(
      fanout(
        items(3, ['a']),
        {
          concurrency: 1,
          shardOf: () => 'a',
          shardBudget: () => 1,
          onResult: () => {
            throw new Error('render');
          },
        },
        tracker().fn,
        notRun,
      ),
    ).rejects.toThrow('render');
  });
});
