/**
 * Storage overhead of an archive file streamed to an S3-compatible server (s3rver, in this
 * process) against the same to a folder, and peak RSS as the file grows (issue 21). Run:
 *   npx tsx bench/s3-storage.ts 64 256
 * Prints one line per size and storage: MiB, seconds, MiB/s, peak RSS.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { FsStorage } from '../src/backup/fs-storage.js';
import { S3Storage } from '../src/backup/s3-storage.js';
import { s3BackupSchema } from '../src/backup/s3-config.js';
import type { BackupStorage } from '../src/backup/storage.js';
import { S3_ENV, startS3Server } from '../test/helpers/s3-server.js';

let peak = 0;
setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20).unref();

function source(mib: number): Readable {
  let sent = 0;
  const chunk = Buffer.alloc(1024 * 1024);
  for (let i = 0; i < chunk.length; i++) chunk[i] = (i * 2654435761) >>> 24;
  return new Readable({
    read() {
      this.push(sent++ < mib ? chunk : null);
    },
  });
}

async function run(s: BackupStorage, mib: number, label: string): Promise<void> {
  peak = process.memoryUsage().rss;
  const id = `bench.${new Date().toISOString().replace(/[-:.]/g, '')}`;
  const t = performance.now();
  const w = await s.begin(id);
  await pipeline(source(mib), w.write('001-t.copy'));
  await w.writeText('manifest.json', '{}');
  await w.commit();
  const up = (performance.now() - t) / 1000;
  const t2 = performance.now();
  await pipeline(s.read(id, '001-t.copy'), new Writable({ write: (_c, _e, cb) => cb() }));
  const down = (performance.now() - t2) / 1000;
  console.log(
    `${label.padEnd(6)} ${String(mib).padStart(5)} MiB  write ${up.toFixed(2)} s (${(mib / up).toFixed(0)} MiB/s)  read ${down.toFixed(2)} s  peak RSS ${(peak / 2 ** 20).toFixed(0)} MiB`,
  );
  await s.remove(id);
}

Object.assign(process.env, S3_ENV);
const sizes = process.argv.slice(2).map(Number);
const dir = await mkdtemp(join(tmpdir(), 'tenantctl-bench-'));
const server = await startS3Server(['bench']);
const s3 = new S3Storage(s3BackupSchema.parse({ bucket: 'bench', endpoint: server.endpoint, region: 'us-east-1', forcePathStyle: true }));
await s3.sdk();
for (const mib of sizes.length ? sizes : [64, 256]) {
  await run(new FsStorage(join(dir, 'fs')), mib, 'folder');
  await run(s3, mib, 's3');
}
await server.close();
await rm(dir, { recursive: true, force: true });
await rm(server.dir, { recursive: true, force: true });
