#!/usr/bin/env node
// The steady application load of bench/move-online.sh: one connection as the serving role
// inserting rows for one pool tenant, one after another, until STOPFILE exists; then a JSON
// summary on stdout (with the commit latency: mean, p50, p99, max in ms) and the ids committed
// before the first fenced insert in IDSFILE.
//
//   node bench/lib/steady-writer.mjs write URL SETTING KEY STOPFILE IDSFILE
//   node bench/lib/steady-writer.mjs check URL KEY IDSFILE      # how many of IDSFILE are at URL
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import pg from 'pg';

const [mode, url, ...rest] = process.argv.slice(2);
const c = new pg.Client({ connectionString: url });
await c.connect();
if (mode === 'check') {
  const [key, idsFile] = rest;
  const ids = readFileSync(idsFile, 'utf8').split('\n').filter(Boolean);
  const r = await c.query('select count(*)::int as n from app.projects where tenant_id = $1 and id = any($2::uuid[])', [key, ids]);
  process.stdout.write(`${JSON.stringify({ committedBeforeFence: ids.length, atTarget: r.rows[0].n })}\n`);
} else {
  const [setting, key, stopFile, idsFile] = rest;
  await c.query('select set_config($1, $2, false)', [setting, key]);
  const ids = [];
  let ok = 0;
  let fenced = 0;
  const other = {};
  let firstFenced = 0;
  let lastFenced = 0;
  let lastOk = Date.now();
  let maxGap = 0;
  const lat = [];
  // WRITE_RATE inserts per second (the writer: about 40); unset or 0: as fast as it can.
  const rate = Number(process.env.WRITE_RATE ?? 0);
  const started = Date.now();
  for (let i = 0; !existsSync(stopFile); i++) {
    if (rate > 0) {
      const due = started + (i * 1000) / rate - Date.now();
      if (due > 0) await new Promise((r) => setTimeout(r, due));
    }
    try {
      const t0 = performance.now();
      const r = await c.query('insert into app.projects (tenant_id, name) values ($1, $2) returning id', [key, `steady ${i}`]);
      lat.push(performance.now() - t0);
      ok++;
      if (!firstFenced) ids.push(r.rows[0].id);
      const now = Date.now();
      maxGap = Math.max(maxGap, now - lastOk);
      lastOk = now;
    } catch (err) {
      if (err.code === '25006') {
        fenced++;
        lastFenced = Date.now();
        firstFenced ||= lastFenced;
      } else other[err.code ?? err.message] = (other[err.code ?? err.message] ?? 0) + 1;
      await new Promise((r) => setTimeout(r, 2));
    }
  }
  writeFileSync(idsFile, ids.join('\n'));
  lat.sort((a, b) => a - b);
  const at = (q) => Number((lat[Math.min(lat.length - 1, Math.floor(q * lat.length))] ?? 0).toFixed(3));
  const latencyMs = {
    mean: Number((lat.reduce((a, b) => a + b, 0) / Math.max(1, lat.length)).toFixed(3)),
    p50: at(0.5),
    p99: at(0.99),
    max: at(1),
  };
  process.stdout.write(
    `${JSON.stringify({ ok, fenced, other, fencedWindowMs: firstFenced ? lastFenced - firstFenced : 0, longestGapBetweenCommitsMs: maxGap, latencyMs })}\n`,
  );
}
await c.end();
