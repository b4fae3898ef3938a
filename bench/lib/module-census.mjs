// Counts the modules a Node program loads, grouped by package (or by the repo's own dist/).
//   node --import ./bench/lib/module-census.mjs bin/tenantctl --help
// Writes one line of JSON to the file named by BENCH_CENSUS_OUT when the process exits.
import Module, { register } from 'node:module';
import { pathToFileURL } from 'node:url';
import { MessageChannel } from 'node:worker_threads';
import { writeFileSync } from 'node:fs';

const { port1, port2 } = new MessageChannel();
const urls = [];
port1.on('message', (u) => urls.push(u));
port1.unref();
register('./module-census-hooks.mjs', { parentURL: import.meta.url, data: { port: port2 }, transferList: [port2] });

process.on('exit', () => {
  const groups = {};
  // CommonJS modules (required by other CommonJS modules) never pass the ESM hooks.
  const all = new Set(urls);
  for (const f of Object.keys(Module._cache)) all.add(pathToFileURL(f).href);
  for (const u of all) {
    let key;
    if (u.startsWith('node:')) key = 'node: builtins';
    else {
      const m = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(u);
      key = m ? m[1] : /\/dist\//.test(u) ? 'tenantctl dist/' : 'other';
    }
    groups[key] = (groups[key] ?? 0) + 1;
  }
  const out = process.env.BENCH_CENSUS_OUT;
  if (out) writeFileSync(out, `${JSON.stringify({ total: all.size, groups })}\n`);
});
