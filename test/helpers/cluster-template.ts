import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { inject } from 'vitest';
import { initCluster } from '../../src/dev/cluster.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** A data directory made by initdb once for the run (see makeClusterTemplate); '' when none. */
    clusterTemplate: string;
  }
}

/**
 * One initdb for the whole run. About 25 test files start a fleet of their own, two clusters
 * each, and initdb costs a CPU-second per cluster (3 s of wall time when the machine is busy);
 * a copy of an initialised data directory costs a fifth of a second. Every test cluster has the
 * same superuser and password (test-fleet.ts), so a copy is what initdb would have made; the
 * port and the settings come from pg_ctl's command line at start, not from the data directory.
 * The folder carries owner.pid, so reapStaleFleets removes it after a killed run.
 *
 * @example
 *   const template = await makeClusterTemplate(PREFIX, OWNER_FILE, HOSTILE_PASSWORD); // in globalSetup
 *   project.provide('clusterTemplate', template.dataDir);
 */
export async function makeClusterTemplate(
  prefix: string,
  ownerFile: string,
  password: string,
): Promise<{ dataDir: string; remove(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  // mkdtemp makes 0700; the postgres OS user must be able to pass through to the data directory.
  await chmod(dir, 0o755);
  await writeFile(join(dir, ownerFile), String(process.pid));
  const dataDir = join(dir, 'template');
  try {
    await initCluster({ dataDir, host: '127.0.0.1', port: 0, user: 'postgres', password });
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  return { dataDir, remove: () => rm(dir, { recursive: true, force: true }) };
}

/** The run's template, when there is one (inside a test file; globalSetup passes it explicitly). */
export function providedTemplate(): string | undefined {
  try {
    return inject('clusterTemplate') || undefined;
  } catch {
    return undefined; // not in a test worker
  }
}

/**
 * Copy the template into each data directory not made yet, so that `dev up` finds a cluster and
 * only starts it. `cp -a` keeps the owner (the postgres OS user when running as root) and modes.
 * Without a template (or it is gone), nothing is copied and `dev up` runs initdb as always.
 */
export async function seedDataDirs(template: string | undefined, dataDirs: string[]): Promise<void> {
  if (!template || !existsSync(join(template, 'PG_VERSION'))) return;
  await Promise.all(
    dataDirs
      .filter((d) => !existsSync(d))
      .map(async (d) => {
        await mkdir(dirname(d), { recursive: true, mode: 0o755 });
        await promisify(execFile)('cp', ['-a', template, d]);
      }),
  );
}
