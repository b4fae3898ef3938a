// The least any Node.js program can take for what `usage --model pool` measures: start node, load
// pg, connect to the pool database, run the hand-written group by per table (the same text psql
// runs), exit. tier-usage.sh times it beside `usage` and psql, so the ratio target can be read
// against what node itself costs on this machine (BENCH_FLOOR=1).
//   node bench/lib/usage-floor.mjs PORT DATABASE < statements.sql   (PGPASSWORD in the environment)
import { readFileSync } from 'node:fs';
import pg from 'pg';

const [port, database] = process.argv.slice(2);
const client = new pg.Client({ host: '127.0.0.1', port: Number(port), user: 'postgres', database, password: process.env.PGPASSWORD });
await client.connect();
await client.query(readFileSync(0, 'utf8'));
await client.end();
