/**
 * The cost-balanced split behind `migrate up --partition I/N` (issue 22): N CI runners should
 * finish close together, so targets are dealt out by expected cost, not by count, and a shard
 * stays with one runner where it can (its connection budget is per process: N runners on one
 * shard would take N budgets). Pure and deterministic: the same targets and costs give the same
 * split on every machine.
 *
 * 1. Units are shards. While a unit costs more than the aim (total / N), or there are fewer
 *    units than runners, the costliest unit is halved by cost (targets in id order).
 * 2. Units go to runners by longest-processing-time: costliest first, each to the least-loaded
 *    runner (ties: the lower runner).
 * 3. If the busiest runner still carries more than 10 % over the mean, the aim is halved and the
 *    split redone (at most a few times): finer units, fewer whole shards, closer finishes.
 *
 * @example
 *   const slices = splitByCost(targets.map((t) => ({ id: t.id, shard: t.shard, cost: costs.get(t.id) ?? 1 })), 4);
 *   slices.get('us1/tenant_schemas/t_acme') // 3
 */
export interface CostedTarget {
  id: string;
  shard: string;
  /** Expected cost in any unit (ms of an earlier run); must be > 0. */
  cost: number;
}

interface Unit {
  shard: string;
  targets: CostedTarget[];
  cost: number;
}

/** Slice (1-based) per target id. */
export function splitByCost(targets: readonly CostedTarget[], count: number): Map<string, number> {
  const sorted = [...targets].sort((a, b) => cmp(a.shard, b.shard) || cmp(a.id, b.id));
  const total = sorted.reduce((s, t) => s + t.cost, 0);
  let aim = total / count;
  let best: { slices: Map<string, number>; max: number } | null = null;
  for (let round = 0; round < 5; round++) {
    const { slices, loads } = deal(units(sorted, aim, count), count);
    const max = Math.max(...loads);
    if (!best || max < best.max) best = { slices, max };
    if (max <= (total / count) * 1.1) break;
    aim /= 2;
  }
  return best?.slices ?? new Map();
}

/** The per-slice expected cost of a split (for reports and tests). */
export function sliceLoads(targets: readonly CostedTarget[], slices: Map<string, number>, count: number): number[] {
  const loads = new Array<number>(count).fill(0);
  for (const t of targets) loads[(slices.get(t.id) ?? 1) - 1] += t.cost;
  return loads;
}

function units(sorted: CostedTarget[], aim: number, count: number): Unit[] {
  const byShard = new Map<string, Unit>();
  for (const t of sorted) {
    const u = byShard.get(t.shard) ?? { shard: t.shard, targets: [], cost: 0 };
    u.targets.push(t);
    u.cost += t.cost;
    byShard.set(t.shard, u);
  }
  const out = [...byShard.values()];
  for (;;) {
    const splittable = out.filter((u) => u.targets.length > 1);
    if (splittable.length === 0) break;
    const big = splittable.reduce((a, b) => (b.cost > a.cost ? b : a));
    if (big.cost <= aim && out.length >= count) break;
    out.splice(out.indexOf(big), 1, ...halve(big));
  }
  return out;
}

/** Two units of about half the cost each (a prefix and the rest, in id order). */
function halve(u: Unit): [Unit, Unit] {
  let acc = 0;
  let cut = 1;
  for (let i = 0; i < u.targets.length - 1; i++) {
    acc += u.targets[i].cost;
    cut = i + 1;
    if (acc >= u.cost / 2) break;
  }
  const a = u.targets.slice(0, cut);
  const b = u.targets.slice(cut);
  const costOf = (xs: CostedTarget[]) => xs.reduce((s, t) => s + t.cost, 0);
  return [
    { shard: u.shard, targets: a, cost: costOf(a) },
    { shard: u.shard, targets: b, cost: costOf(b) },
  ];
}

function deal(list: Unit[], count: number): { slices: Map<string, number>; loads: number[] } {
  const ordered = [...list].sort((a, b) => b.cost - a.cost || cmp(a.targets[0].id, b.targets[0].id));
  const loads = new Array<number>(count).fill(0);
  const slices = new Map<string, number>();
  for (const u of ordered) {
    let k = 0;
    for (let i = 1; i < count; i++) if (loads[i] < loads[k]) k = i;
    loads[k] += u.cost;
    for (const t of u.targets) slices.set(t.id, k + 1);
  }
  return { slices, loads };
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
