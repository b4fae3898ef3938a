import { randomBytes } from 'node:crypto';
import { open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Registry } from 'prom-client';

/**
 * Write a registry as a Prometheus textfile the way node_exporter's textfile collector wants it:
 * the text goes to a temporary file in the same folder (same file system, and a name not ending
 * in `.prom`, so the collector never reads it half-written), is flushed to disk, then renamed
 * over `path` in one step. A scrape sees the old file or the new one, never a mix.
 *
 * @example
 *   await writeTextfile('/var/lib/node_exporter/textfile/tenantctl-backup.prom', registry);
 */
export async function writeTextfile(path: string, registry: Registry): Promise<void> {
  const text = await registry.metrics();
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    const file = await open(tmp, 'wx', 0o644);
    try {
      await file.writeFile(text, 'utf8');
      await file.sync();
    } finally {
      await file.close();
    }
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}
