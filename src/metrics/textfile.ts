/**
 * Prometheus textfiles (node_exporter's textfile collector) through prom-client: the registry's
 * text is written to a temporary name in the same directory, then renamed over the file, so a
 * scrape never reads half a file (rename is atomic within one filesystem).
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import { rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Registry } from 'prom-client';

/**
 * Write the registry's metrics to `path`, atomically.
 *
 * @example
 *   await writeTextfile('/var/lib/node_exporter/tenantctl.prom', registry);
 */
export async function writeTextfile(path: string, registry: Registry): Promise<void> {
  const text = await registry.metrics();
  // A dot-name: the textfile collector reads only *.prom, so it never sees the temporary file.
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    await writeFile(tmp, text, { mode: 0o644 });
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}
