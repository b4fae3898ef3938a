#!/usr/bin/env node
// A V8 .cpuprofile (from `node --cpu-prof`) as a timeline: per slice of MS milliseconds, where the
// process was (idle, garbage collection, or the innermost tenantctl function of the stack, else its
// package or Node's internal module), the top four with their ms. Shows what a run waits on and
// when, which self time summed over the whole run (cpu-summary.mjs) cannot.
//
//   node bench/lib/cpu-timeline.mjs PROFILE.cpuprofile [MS]     # MS: slice width, default 100
import { readFileSync } from 'node:fs';

const [file, msArg] = process.argv.slice(2);
if (!file) {
  process.stderr.write('usage: node bench/lib/cpu-timeline.mjs PROFILE.cpuprofile [MS]\n');
  process.exit(2);
}
const slice = Number(msArg ?? 100) * 1000;
const profile = JSON.parse(readFileSync(file, 'utf8'));
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const parent = new Map();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

function label(id) {
  const chain = [];
  for (let cur = id; cur !== undefined; cur = parent.get(cur)) chain.push(byId.get(cur).callFrame);
  const self = chain[0];
  if (self.functionName === '(idle)') return '(idle)';
  if (self.functionName === '(garbage collector)') return '(gc)';
  const ours = chain.find((f) => f.url.includes('/dist/'));
  if (ours) return `${ours.functionName || '(anonymous)'}@${ours.url.replace(/.*\/dist\//, '')}`;
  const pkg = chain.find((f) => f.url.includes('node_modules/'));
  if (pkg) return `package:${pkg.url.replace(/.*node_modules\/((@[^/]+\/)?[^/]+).*/, '$1')}`;
  return self.url.replace(/.*internal\//, 'node:internal/') || self.functionName;
}

// A sample's time is the delta to the next sample (the last one has none).
const slices = new Map();
let t = profile.startTime;
for (let i = 0; i < profile.samples.length; i++) {
  t += profile.timeDeltas[i];
  const at = Math.floor((t - profile.startTime) / slice);
  const what = label(profile.samples[i]);
  const m = slices.get(at) ?? new Map();
  slices.set(at, m);
  m.set(what, (m.get(what) ?? 0) + (profile.timeDeltas[i + 1] ?? 0));
}
for (const [at, m] of [...slices].sort((a, b) => a[0] - b[0])) {
  const top = [...m]
    .sort((a, b) => b[1] - a[1])
    .slice(0, 4)
    .map(([what, us]) => `${what} ${(us / 1000).toFixed(0)}`)
    .join(', ');
  console.log(`${String((at * slice) / 1000).padStart(6)} ms: ${top}`);
}
console.log(`total ${((profile.endTime - profile.startTime) / 1000).toFixed(0)} ms`);
