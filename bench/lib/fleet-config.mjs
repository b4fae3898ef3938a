#!/usr/bin/env node
// Write a throwaway tenants.config.yaml for a benchmark fleet, shaped like the repository's
// (same as test/helpers/test-fleet.ts does for the integration tests): shards on free random
// ports, dev.dataDir and backups inside DIR, migrations.dir the repository's absolute folder.
//
//   node bench/lib/fleet-config.mjs DIR [SHARDS]
//   BENCH_SHARD_USER=tenantctl node bench/lib/fleet-config.mjs DIR 2   # least-privileged shard role
//
// Prints shell assignments for the caller to eval:
//   BENCH_CONFIG=... BENCH_PASSWORD=... BENCH_PORT_US1=...
import { readFile, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseDocument } from 'yaml';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const [dir, shardArg] = process.argv.slice(2);
if (!dir) {
  process.stderr.write('usage: node bench/lib/fleet-config.mjs DIR [SHARDS]\n');
  process.exit(2);
}
const count = Number(shardArg ?? 1);

/** Distinct ports free right now (all listeners held together so none is handed out twice). */
async function freePorts(n) {
  const servers = await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise((resolve, reject) => {
          const s = createServer();
          s.once('error', reject);
          s.listen({ host: '127.0.0.1', port: 0 }, () => resolve(s));
        }),
    ),
  );
  const ports = servers.map((s) => s.address().port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

const doc = parseDocument(await readFile(join(REPO, 'tenants.config.yaml'), 'utf8'));
const ports = await freePorts(count);
// Hex only: safe in a URL and in PGPASSWORD without any quoting.
const password = randomBytes(12).toString('hex');
const regions = { 'us-east': { backup: { dir: join(dir, 'backups', 'us-east') }, shards: {} } };
const names = [];
for (let i = 0; i < count; i++) {
  const region = i % 2 === 0 ? 'us-east' : 'eu-west';
  const name = `${region === 'us-east' ? 'us' : 'eu'}${Math.floor(i / 2) + 1}`;
  regions[region] ??= { residency: 'eu', backup: { dir: join(dir, 'backups', 'eu-west') }, shards: {} };
  regions[region].shards[name] = {
    // dev up creates a user other than postgres as LOGIN CREATEDB CREATEROLE (src/dev/shard-role.ts).
    url: `postgres://${process.env.BENCH_SHARD_USER ?? 'postgres'}:${password}@127.0.0.1:${ports[i]}/postgres`,
    maxConnections: 10,
    embedded: true,
  };
  names.push(name);
}
doc.set('regions', doc.createNode(regions));
doc.setIn(['catalog', 'shard'], 'us1');
doc.setIn(['defaults', 'region'], 'us-east');
doc.setIn(['migrations', 'dir'], join(REPO, 'migrations'));
doc.setIn(['dev', 'dataDir'], join(dir, 'clusters'));
const configFile = join(dir, 'tenants.config.yaml');
await writeFile(configFile, doc.toString());

const q = (s) => `'${String(s).replace(/'/g, `'\\''`)}'`;
const lines = [`BENCH_CONFIG=${q(configFile)}`, `BENCH_PASSWORD=${q(password)}`];
names.forEach((n, i) => lines.push(`BENCH_PORT_${n.toUpperCase()}=${ports[i]}`));
process.stdout.write(`${lines.join('\n')}\n`);
