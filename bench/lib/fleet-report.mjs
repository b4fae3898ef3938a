#!/usr/bin/env node
// One fan-out of bench/fleet-scale.sh, per shard: items, start and finish (seconds after the
// command started, from each row's startedAt / finishedAt in the --json report), busy share of
// its window, and peak connections (from bench/lib/conn-sampler.mjs) against maxConnections; over
// the fleet, the most items running at once (from the same times) against the global bound.
//
//   node bench/lib/fleet-report.mjs NAME REPORT.json SAMPLER.json T0_MS T1_MS GLOBAL_BOUND SUMMARY.jsonl
//
// Prints a table; appends one JSON line (the step's figures) to SUMMARY.jsonl; exits 1 when a
// shard went over its maxConnections or more items ran at once than the global bound.
import { appendFileSync, readFileSync } from 'node:fs';

const [name, reportFile, samplerFile, t0Arg, t1Arg, boundArg, summaryFile] = process.argv.slice(2);
const t0 = Number(t0Arg);
const wallMs = Number(t1Arg) - t0;
const bound = Number(boundArg);
const sampler = JSON.parse(readFileSync(samplerFile, 'utf8'));

/** The report's per-item rows: the first array of rows with times (results, audit's units…). */
function rowsOf(doc) {
  for (const v of Array.isArray(doc) ? [doc] : Object.values(doc ?? {})) {
    if (Array.isArray(v) && v.some((r) => r && typeof r === 'object' && 'startedAt' in r)) return v;
  }
  return [];
}
let rows = [];
try {
  rows = rowsOf(JSON.parse(readFileSync(reportFile, 'utf8')));
} catch {
  // A command without a JSON report (or an empty one): connections only.
}

const perShard = new Map();
for (const r of rows) {
  if (!r.shard || !r.startedAt) continue;
  let s = perShard.get(r.shard);
  if (!s) perShard.set(r.shard, (s = { items: new Map() }));
  // A pool target of migrate up reports one row per tenant with the same times: count it once.
  s.items.set(`${r.target ?? r.tenant} ${r.startedAt}`, [Date.parse(r.startedAt) - t0, Date.parse(r.finishedAt) - t0]);
}
/** Length of the union of intervals. */
function covered(intervals) {
  const sorted = [...intervals].sort((a, b) => a[0] - b[0]);
  let total = 0;
  let [cs, ce] = sorted[0];
  for (const [s, e] of sorted.slice(1)) {
    if (s > ce) {
      total += ce - cs;
      [cs, ce] = [s, e];
    } else ce = Math.max(ce, e);
  }
  return total + ce - cs;
}

/** Most items running at once over the fleet: what the global bound limits. */
function peakInFlight(intervals) {
  const ev = intervals
    .flatMap(([a, b]) => [
      [a, 1],
      [b, -1],
    ])
    .sort((x, y) => x[0] - y[0] || x[1] - y[1]);
  let n = 0;
  let peak = 0;
  for (const [, d] of ev) peak = Math.max(peak, (n += d));
  return peak;
}
const inFlight = peakInFlight([...perShard.values()].flatMap((s) => [...s.items.values()]));
const names = Object.keys(sampler.shards);
const sec = (ms) => (ms / 1000).toFixed(1);
const out = { step: name, wallMs, globalBound: bound, peakInFlight: inFlight, fleetPeakActive: sampler.fleetPeakActive, shards: {} };
const lines = [
  `${name}: wall ${sec(wallMs)} s; items in flight at most ${perShard.size ? inFlight : 'n/a (no per-item times in the report)'} (global bound ${bound}); fleet peak active connections ${sampler.fleetPeakActive}`,
];
lines.push('  shard  items  start s  finish s  busy  peak conns (active) / max');
let over = false;
for (const shard of names) {
  const c = sampler.shards[shard];
  const s = perShard.get(shard);
  const fig = { peak: c.peak, peakActive: c.peakActive, maxConnections: c.maxConnections };
  let timing = '      -        -         -     -';
  if (s) {
    const iv = [...s.items.values()];
    const start = Math.min(...iv.map((x) => x[0]));
    const finish = Math.max(...iv.map((x) => x[1]));
    const busy = finish > start ? covered(iv) / (finish - start) : 1;
    Object.assign(fig, { items: iv.length, startMs: start, finishMs: finish, busy: Number(busy.toFixed(3)) });
    timing = `${String(iv.length).padStart(6)}  ${sec(start).padStart(7)}  ${sec(finish).padStart(8)}  ${`${Math.round(busy * 100)}%`.padStart(4)}`;
  }
  if (c.peak > c.maxConnections) over = true;
  out.shards[shard] = fig;
  lines.push(`  ${shard.padEnd(5)} ${timing}  ${String(c.peak).padStart(5)} (${c.peakActive}) / ${c.maxConnections}`);
}
const timed = Object.values(out.shards).filter((f) => f.startMs !== undefined);
if (timed.length) {
  out.startSpreadMs = Math.max(...timed.map((f) => f.startMs)) - Math.min(...timed.map((f) => f.startMs));
  out.finishSpreadMs = Math.max(...timed.map((f) => f.finishMs)) - Math.min(...timed.map((f) => f.finishMs));
  out.minBusy = Math.min(...timed.map((f) => f.busy));
  lines.push(
    `  spread: first starts within ${sec(out.startSpreadMs)} s, finishes within ${sec(out.finishSpreadMs)} s; lowest busy share ${Math.round(out.minBusy * 100)}%`,
  );
}
if (inFlight > bound) over = true;
out.withinBounds = !over;
lines.push(`  bounds: ${over ? 'EXCEEDED' : 'every shard within maxConnections, the fleet within the global bound'}`);
console.log(lines.join('\n'));
appendFileSync(summaryFile, `${JSON.stringify(out)}\n`);
process.exit(over ? 1 : 0);
