import { type ChildProcess, spawn } from 'node:child_process';
import { access, constants } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import { TenantctlError, UsageError } from '../errors.js';
import type { OsUser } from '../dev/os-user.js';
import type { PitrRepo } from './repo.js';

/** The Debian package tenantctl uses (the real tool: tenantctl writes no archiver of its own). */
export const PGBACKREST_PACKAGE = 'pgbackrest';

/**
 * The path of the pgbackrest program on PATH (or /usr/bin), or null when it is not installed.
 *
 * @example
 *   if (!(await findPgbackrest())) console.log('apt-get install -y pgbackrest');
 */
export async function findPgbackrest(): Promise<string | null> {
  const dirs = [...(process.env.PATH ?? '').split(delimiter).filter(Boolean), '/usr/bin'];
  for (const d of dirs) {
    const p = join(d, 'pgbackrest');
    if (
      await access(p, constants.X_OK).then(
        () => true,
        () => false,
      )
    )
      return p;
  }
  return null;
}

/** The program, or exit 2 naming the package to install. */
export async function requirePgbackrest(): Promise<string> {
  const p = await findPgbackrest();
  if (!p) {
    throw new UsageError(
      'PITR_UNAVAILABLE',
      'pgBackRest is not installed on this machine (point-in-time restore runs it)',
      `install Debian's ${PGBACKREST_PACKAGE} package: apt-get install -y ${PGBACKREST_PACKAGE}`,
    );
  }
  return p;
}

export interface PgbackrestRun {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * pgBackRest processes this process started and that still run. A Ctrl-C or a job's SIGTERM ends
 * this process at once (src/cli/main.ts): they end with it, not on as orphans holding their lock
 * (the advised re-run failed on it, "is another pgBackRest process running?", and the orphan
 * finished a backup said to have stopped). One exit listener for all of them.
 */
const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of running) child.kill('SIGTERM');
});

/**
 * Run one pgBackRest command with the region's config as the OS user PostgreSQL runs as (it
 * reads the data directory and writes the repository as that user). Never throws for its exit
 * code: callers read it.
 *
 * @example
 *   await pgbackrest(repo, user, ['--stanza=us1', 'info', '--output=json']);
 */
export async function pgbackrest(
  repo: PitrRepo,
  user: OsUser | undefined,
  args: string[],
  opts: { onStderr?: (line: string) => void } = {},
): Promise<PgbackrestRun> {
  const bin = await requirePgbackrest();
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, LC_ALL: 'C', LANG: 'C' };
  return new Promise((resolve, reject) => {
    const child = spawn(bin, [`--config=${repo.configFile}`, ...args], {
      env,
      cwd: '/',
      stdio: ['ignore', 'pipe', 'pipe'],
      ...(user ? { uid: user.uid, gid: user.gid } : {}),
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString('utf8')));
    child.stderr.on('data', (b: Buffer) => {
      stderr += b.toString('utf8');
      opts.onStderr?.(b.toString('utf8'));
    });
    running.add(child);
    child.once('error', (err) => {
      running.delete(child);
      reject(err);
    });
    child.once('close', (code, signal) => {
      running.delete(child);
      resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr });
    });
  });
}

/** pgBackRest's run, or a PITR_FAILED error quoting its own message. */
export async function pgbackrestOk(repo: PitrRepo, user: OsUser | undefined, args: string[], what: string): Promise<string> {
  const r = await pgbackrest(repo, user, args);
  if (r.code !== 0) {
    const said = `${r.stderr}\n${r.stdout}`.trim().split('\n').filter(Boolean).slice(-4).join(' | ');
    throw new TenantctlError('PITR_FAILED', `pgBackRest ${what} failed (exit ${r.code}): ${said}`);
  }
  return r.stdout;
}
