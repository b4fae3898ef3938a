#!/usr/bin/env node
// Summarise a V8 .cpuprofile (from `node --cpu-prof`): self time by package / tenantctl file,
// and the top functions by self time.
//
//   node bench/lib/cpu-summary.mjs PROFILE.cpuprofile [TOP]
import { readFileSync } from 'node:fs';

const [file, topArg] = process.argv.slice(2);
if (!file) {
  process.stderr.write('usage: node bench/lib/cpu-summary.mjs PROFILE.cpuprofile [TOP]\n');
  process.exit(2);
}
const top = Number(topArg ?? 15);
const prof = JSON.parse(readFileSync(file, 'utf8'));
const byId = new Map(prof.nodes.map((n) => [n.id, n]));

// Self time per node from the samples and their time deltas (microseconds).
const self = new Map();
prof.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (prof.timeDeltas[i] ?? 0)));
const total = [...self.values()].reduce((a, b) => a + b, 0);

function groupOf(url, fn) {
  if (!url)
    return fn === '(idle)'
      ? '(idle)'
      : fn === '(garbage collector)'
        ? '(garbage collector)'
        : fn === '(program)'
          ? '(program: V8/native)'
          : `(native) ${fn}`;
  const m = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
  if (m) return m[1];
  if (url.startsWith('node:')) return `node:${url.slice(5).split('/')[0]}`;
  const d = /\/dist\/(.+?)\.js$/.exec(url);
  if (d) return `tenantctl ${d[1]}`;
  return url.replace(/^file:\/\//, '');
}

const groups = new Map();
const fns = new Map();
for (const [id, us] of self) {
  const n = byId.get(id);
  const { functionName, url, lineNumber } = n.callFrame;
  const g = groupOf(url, functionName);
  groups.set(g, (groups.get(g) ?? 0) + us);
  const key = `${functionName || '(anonymous)'}  ${url ? `${url.replace(/^.*node_modules\//, '').replace(/^file:\/\/.*\/dist\//, 'dist/')}:${lineNumber + 1}` : ''}`;
  fns.set(key, (fns.get(key) ?? 0) + us);
}
const ms = (us) => `${(us / 1000).toFixed(0)} ms`;
const pct = (us) => `${((100 * us) / total).toFixed(1)}%`;
const busy = total - (groups.get('(idle)') ?? 0);
console.log(`cpu profile: ${ms(total)} sampled, ${ms(busy)} busy (not idle)`);
console.log('self time by package or tenantctl file:');
for (const [g, us] of [...groups].sort((a, b) => b[1] - a[1]).slice(0, top))
  console.log(`  ${ms(us).padStart(9)} ${pct(us).padStart(6)}  ${g}`);
console.log('top functions by self time:');
for (const [f, us] of [...fns].sort((a, b) => b[1] - a[1]).slice(0, top))
  console.log(`  ${ms(us).padStart(9)} ${pct(us).padStart(6)}  ${f}`);
