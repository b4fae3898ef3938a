// Where a tenantctl run spends its time talking to PostgreSQL, without changing tenantctl:
// preloaded with --import, it wraps pg.Client's connect and query (the same `pg` instance the CLI
// uses) and, at exit, writes a summary to BENCH_TRACE_OUT (or stderr):
//   - process start to first query, first to last query, last query to exit
//   - connections opened, per database, and the time spent opening them
//   - queries per kind (SQL with names and numbers blanked), count and summed latency
//
//   BENCH_TRACE_OUT=trace.txt node --import tsx --import ./bench/lib/pg-trace.mjs src/cli/main.ts --config C \
//     tenant create --from-file tenants.csv --concurrency 8 --quiet
//
// On the sources (tsx), not bin/tenantctl: the built bundle carries its own copy of pg, which this
// preload cannot reach (it would see no query, and load pg from node_modules for nothing).
//
// Summed latencies overlap when work runs concurrently: divide by the concurrency for a rough
// share of the wall time.
import { createRequire } from 'node:module';
import { writeFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';

const require = createRequire(new URL('../../package.json', import.meta.url));
const pg = require('pg');
const Client = pg.Client;

const stats = {
  connects: new Map(), // database -> { n, ms }
  queries: new Map(), // kind -> { n, ms, max }
  firstQuery: Infinity,
  lastQuery: 0,
};

function bump(map, key, ms) {
  const s = map.get(key) ?? { n: 0, ms: 0, max: 0 };
  s.n++;
  s.ms += ms;
  s.max = Math.max(s.max, ms);
  map.set(key, s);
}

function kindOf(config) {
  const text = typeof config === 'string' ? config : (config?.text ?? '');
  const flat = text
    .replace(/--[^\n]*/g, ' ')
    .replace(/\s+/g, ' ')
    .trim();
  if (flat.length > 400 && /create table/i.test(flat))
    return `<migration file body, ${/create table/gi.test(flat) ? flat.match(/create table/gi).length : 0} create table>`;
  return flat
    .replace(/"(?:[^"]|"")*"/g, '"…"')
    .replace(/'(?:[^']|'')*'/g, "'…'")
    .replace(/\b\d+\b/g, 'N')
    .slice(0, 110);
}

function timed(onDone, args) {
  const last = args.length - 1;
  if (typeof args[last] === 'function') {
    const cb = args[last];
    const t0 = performance.now();
    args[last] = function (...r) {
      onDone(performance.now() - t0, t0);
      return cb.apply(this, r);
    };
    return { promise: false };
  }
  return { promise: true, t0: performance.now() };
}

const origConnect = Client.prototype.connect;
Client.prototype.connect = function (...args) {
  const db = this.connectionParameters?.database ?? '?';
  const done = (ms) => bump(stats.connects, db, ms);
  const t = timed(done, args);
  const out = origConnect.apply(this, args);
  if (t.promise && out && typeof out.then === 'function') {
    return out.then(
      (v) => (done(performance.now() - t.t0), v),
      (e) => (done(performance.now() - t.t0), Promise.reject(e)),
    );
  }
  return out;
};

const origQuery = Client.prototype.query;
Client.prototype.query = function (config, ...rest) {
  // Streams (pg-copy-streams) and cursors are submittables: pass them through untimed.
  if (config && typeof config.submit === 'function') return origQuery.call(this, config, ...rest);
  const kind = kindOf(config);
  const done = (ms, t0) => {
    bump(stats.queries, kind, ms);
    stats.firstQuery = Math.min(stats.firstQuery, t0);
    stats.lastQuery = Math.max(stats.lastQuery, t0 + ms);
  };
  const args = [config, ...rest];
  const t = timed(done, args);
  const out = origQuery.apply(this, args);
  if (t.promise && out && typeof out.then === 'function') {
    return out.then(
      (v) => (done(performance.now() - t.t0, t.t0), v),
      (e) => (done(performance.now() - t.t0, t.t0), Promise.reject(e)),
    );
  }
  return out;
};

process.on('exit', () => {
  const end = performance.now();
  const f = (ms) => `${(ms / 1000).toFixed(2)}s`;
  const lines = [];
  const conns = [...stats.connects.entries()];
  const totalConns = conns.reduce((a, [, s]) => a + s.n, 0);
  const totalQ = [...stats.queries.values()].reduce((a, s) => a + s.n, 0);
  const sumQ = [...stats.queries.values()].reduce((a, s) => a + s.ms, 0);
  lines.push(
    `pg-trace: process ${f(end)}: start→first query ${f(stats.firstQuery)}, queries ${f(stats.lastQuery - stats.firstQuery)}, last query→exit ${f(end - stats.lastQuery)}`,
  );
  lines.push(
    `pg-trace: ${totalConns} connections opened (${conns.map(([db, s]) => `${db} ${s.n}`).join(', ')}), ${f(conns.reduce((a, [, s]) => a + s.ms, 0))} summed connect time`,
  );
  lines.push(`pg-trace: ${totalQ} queries, ${f(sumQ)} summed latency; by kind (summed latency, count, max):`);
  const top = [...stats.queries.entries()].sort((a, b) => b[1].ms - a[1].ms).slice(0, Number(process.env.BENCH_TRACE_TOP ?? 25));
  for (const [k, s] of top) lines.push(`  ${f(s.ms).padStart(7)} ${String(s.n).padStart(6)}x  max ${s.max.toFixed(0).padStart(5)}ms  ${k}`);
  const text = `${lines.join('\n')}\n`;
  if (process.env.BENCH_TRACE_OUT) writeFileSync(process.env.BENCH_TRACE_OUT, text);
  else process.stderr.write(text);
});
