#!/usr/bin/env node
// Samples tenantctl's connections on every shard of a fleet config while a command runs, and
// writes the peaks when it is stopped (SIGTERM / SIGINT):
//
//   node bench/lib/conn-sampler.mjs CONFIG OUT.json [INTERVAL_MS]   # default every 100 ms
//
// One connection per shard, held for the whole run (its own application_name, so it never counts
// itself), reading pg_stat_activity for application_name like 'tenantctl%' (the fleet's pools
// and the catalog's). OUT.json: per shard the peak of all such connections (the pool keeps idle
// ones open: this is what maxConnections bounds) and of the active ones; the peak over the fleet
// of active connections at one tick (what the global bound limits, plus the catalog's); and per
// shard the first and last tick (ms since the sampler started) with an active one.
import { readFileSync, writeFileSync } from 'node:fs';
import pg from 'pg';
import { parse } from 'yaml';

const [configFile, out, intervalArg] = process.argv.slice(2);
const interval = Number(intervalArg ?? 100);
const config = parse(readFileSync(configFile, 'utf8'));
const shards = [];
for (const region of Object.values(config.regions)) {
  for (const [name, s] of Object.entries(region.shards)) shards.push({ name, url: s.url, maxConnections: s.maxConnections });
}
const t0 = Date.now();
const stats = Object.fromEntries(
  shards.map((s) => [
    s.name,
    { maxConnections: s.maxConnections, peak: 0, peakActive: 0, firstActiveMs: null, lastActiveMs: null, samples: 0 },
  ]),
);
let fleetPeakActive = 0;
let fleetPeakAll = 0;
let stopping = false;

const clients = await Promise.all(
  shards.map(async (s) => {
    const c = new pg.Client({ connectionString: s.url, application_name: 'bench-sampler' });
    await c.connect();
    return c;
  }),
);
const Q = `select count(*)::int as n, (count(*) filter (where state <> 'idle'))::int as active
             from pg_stat_activity where application_name like 'tenantctl%' and pid <> pg_backend_pid()`;

async function tick() {
  const rows = await Promise.all(clients.map((c) => c.query(Q).then((r) => r.rows[0])));
  const at = Date.now() - t0;
  let active = 0;
  let all = 0;
  rows.forEach((r, i) => {
    const s = stats[shards[i].name];
    s.samples++;
    s.peak = Math.max(s.peak, r.n);
    s.peakActive = Math.max(s.peakActive, r.active);
    if (r.active > 0) {
      s.firstActiveMs ??= at;
      s.lastActiveMs = at;
    }
    active += r.active;
    all += r.n;
  });
  fleetPeakActive = Math.max(fleetPeakActive, active);
  fleetPeakAll = Math.max(fleetPeakAll, all);
}

function finish() {
  if (stopping) return;
  stopping = true;
  writeFileSync(out, JSON.stringify({ startedAt: t0, intervalMs: interval, fleetPeakActive, fleetPeakAll, shards: stats }, null, 1));
  Promise.allSettled(clients.map((c) => c.end())).then(() => process.exit(0));
}
process.on('SIGTERM', finish);
process.on('SIGINT', finish);
// Ready: the caller waits for this file before starting the measured command.
writeFileSync(`${out}.ready`, String(t0));
while (!stopping) {
  const started = Date.now();
  await tick().catch(() => {});
  await new Promise((r) => setTimeout(r, Math.max(0, interval - (Date.now() - started))));
}
