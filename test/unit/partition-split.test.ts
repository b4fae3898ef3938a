import { describe, expect, it } from 'vitest';
import { type CostedTarget, sliceLoads, splitByCost } from '../../src/migrate/partition-split.js';

/** Targets of one shard: n of them, each costing `cost`. */
function shard(name: string, n: number, cost: number): CostedTarget[] {
  return Array.from({ length: n }, (_, i) => ({ id: `${name}/db/t${String(i).padStart(5, '0')}`, shard: name, cost }));
}

function check(targets: CostedTarget[], count: number) {
  const slices = splitByCost(targets, count);
  // Every target in exactly one slice between 1 and N: the union of the N jobs is one run.
  expect(slices.size).toBe(targets.length);
  for (const t of targets) {
    const s = slices.get(t.id)!;
    expect(s).toBeGreaterThanOrEqual(1);
    expect(s).toBeLessThanOrEqual(count);
  }
  const loads = sliceLoads(targets, slices, count);
  const mean = loads.reduce((a, b) => a + b, 0) / count;
  return { slices, loads, mean, max: Math.max(...loads) };
}

describe('splitByCost (migrate up --partition I/N)', () => {
  it('keeps whole shards together when the shards divide evenly among the runners', () => {
    const targets = ['s1', 's2', 's3', 's4', 's5', 's6', 's7', 's8'].flatMap((s) => shard(s, 1250, 2));
    const { slices, loads } = check(targets, 4);
    expect(loads).toEqual([5000, 5000, 5000, 5000]);
    // Each runner owns two whole shards: a shard's connection budget is taken by one runner only.
    for (const s of ['s1', 's2', 's3', 's4', 's5', 's6', 's7', 's8']) {
      expect(new Set(targets.filter((t) => t.shard === s).map((t) => slices.get(t.id))).size).toBe(1);
    }
  });

  it('balances by expected cost, not by count', () => {
    // 20 slow targets (a database per tenant, say) against 2,000 quick ones.
    const targets = [...shard('a', 20, 500), ...shard('b', 2000, 5)];
    const { slices, loads, mean, max } = check(targets, 2);
    expect(max).toBeLessThanOrEqual(mean * 1.1);
    const counts = [1, 2].map((k) => targets.filter((t) => slices.get(t.id) === k).length);
    // A split by count would give each runner 1,010 targets and one of them every slow target.
    expect(Math.abs(counts[0] - counts[1])).toBeGreaterThan(500);
    expect(loads[0] + loads[1]).toBe(20 * 500 + 2000 * 5);
  });

  it('splits a big shard across runners when one shard outweighs the rest', () => {
    const targets = [...shard('big', 6000, 1), ...shard('s2', 500, 1), ...shard('s3', 500, 1)];
    const { max, mean } = check(targets, 4);
    expect(max).toBeLessThanOrEqual(mean * 1.1);
  });

  it('is deterministic: the same split whatever order the targets come in', () => {
    const targets = [...shard('x', 300, 3), ...shard('y', 200, 7), ...shard('z', 50, 40)].map((t, i) => ({ ...t, cost: t.cost + (i % 5) }));
    const a = splitByCost(targets, 3);
    const b = splitByCost([...targets].reverse(), 3);
    expect([...b.entries()].sort()).toEqual([...a.entries()].sort());
  });

  it('handles more runners than targets, and one runner', () => {
    const few = shard('s', 2, 1);
    const { loads } = check(few, 5);
    expect(loads.filter((l) => l > 0)).toHaveLength(2);
    expect(check(shard('s', 10, 1), 1).loads).toEqual([10]);
    expect(splitByCost([], 3).size).toBe(0);
  });
});
