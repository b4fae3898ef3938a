import { isProcessAlive } from './process-alive.js';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, chown, mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { basename, dirname, join } from 'node:path';
import { TenantctlError } from '../errors.js';
import { findBinaries } from './binaries.js';
import { clusterOsUser, type OsUser } from './os-user.js';

/**
 * One embedded PostgreSQL cluster: a data directory served on one port. Processes run as
 * {@link clusterOsUser} (PostgreSQL refuses root), detached from us, so clusters outlive the CLI.
 */
export interface ClusterSpec {
  /** Absolute path of the data directory. */
  dataDir: string;
  /** listen_addresses: an IP literal or `localhost`. */
  host: string;
  port: number;
  /** The shard URL's user: the least-privileged role tenantctl connects as (see shard-role.ts). */
  user: string;
  /** Its password (decoded). Never passed on a command line, where `ps` would show it. */
  password: string;
  /** More connections and fewer durability guarantees, for the integration-test fleet. */
  testMode?: boolean;
  /** Keep full_page_writes on in testMode: a base backup restored later needs them (src/pitr/). */
  fullPageWrites?: boolean;
}

export type ClusterState = 'absent' | 'stopped' | 'running';

export interface ClusterStatus {
  state: ClusterState;
  /** Postmaster PID and port, read from postmaster.pid, when running. */
  pid?: number;
  port?: number;
}

/** The bootstrap superuser of every embedded cluster (same password as the url's user). */
export const DEV_SUPERUSER = 'postgres';

/** How long pg_ctl waits for start and stop (seconds). Startup after a crash replays WAL. */
const PG_CTL_TIMEOUT_S = 60;

/**
 * Whether dataDir holds a cluster and whether it is running, from PG_VERSION and postmaster.pid.
 * Read directly rather than through `pg_ctl status`: no process to spawn (it would have to run as
 * the cluster's user), and the pid file also tells the port.
 *
 * @example
 *   const { state, port } = await clusterStatus('/repo/.tenantctl/dev/us1'); // { state: 'running', port: 55431 }
 */
export async function clusterStatus(dataDir: string): Promise<ClusterStatus> {
  if (!(await exists(join(dataDir, 'PG_VERSION')))) return { state: 'absent' };
  let lines: string[];
  try {
    lines = (await readFile(join(dataDir, 'postmaster.pid'), 'utf8')).split('\n');
  } catch {
    return { state: 'stopped' };
  }
  const pid = Number.parseInt(lines[0] ?? '', 10);
  const port = Number.parseInt(lines[3] ?? '', 10);
  if (!Number.isInteger(pid) || pid <= 0 || !(await isPostgresProcess(pid))) {
    // A stale pid file (the machine or container restarted); postgres removes it on its next start.
    return { state: 'stopped' };
  }
  return { state: 'running', pid, port: Number.isInteger(port) ? port : undefined };
}

/**
 * Create the cluster with initdb if dataDir holds none yet. Returns true when it ran initdb.
 * Authentication is scram-sha-256 for TCP and the socket alike, with spec.user/spec.password as
 * the superuser's password (the superuser is `postgres`), UTF8 and the C locale (the only locales guaranteed to exist everywhere).
 *
 * @example
 *   await initCluster({ dataDir, host: '127.0.0.1', port: 55431, user: 'postgres', password: 'pw' });
 */
export async function initCluster(spec: ClusterSpec): Promise<boolean> {
  if ((await clusterStatus(spec.dataDir)).state !== 'absent') return false;
  const [bin, osUser] = await Promise.all([findBinaries(), clusterOsUser()]);
  await prepareDataDir(spec.dataDir, osUser);
  // initdb needs the password in a file. It goes next to the data directory, which we just
  // proved the cluster's user can reach (os.tmpdir() might not be), readable only by that user.
  // (A pipe as /dev/stdin does not work: the pipe belongs to root and the child is not root.)
  const pwfile = join(dirname(spec.dataDir), `.${basename(spec.dataDir)}.pw-${randomBytes(6).toString('hex')}`);
  await writeFile(pwfile, `${spec.password}\n`, { mode: 0o600, flag: 'wx' });
  try {
    if (osUser) await chown(pwfile, osUser.uid, osUser.gid);
    const result = await runAs(osUser, bin.initdb, [
      `--pgdata=${spec.dataDir}`,
      `--username=${DEV_SUPERUSER}`,
      `--pwfile=${pwfile}`,
      '--auth=scram-sha-256',
      '--encoding=UTF8',
      '--locale=C',
      // Skip fsync of the new files: a dev cluster is disposable, and on slow disks initdb's
      // fsyncs dominate its time (about 0.1 s of 0.7 s on the machine this was written on).
      '--no-sync',
    ]);
    if (result.code !== 0) {
      const permission = /permission denied/i.test(result.output);
      throw new TenantctlError(
        'DEV_FAILED',
        `initdb failed for ${spec.dataDir}: ${lastLines(result.output, 5)}`,
        permission
          ? `set dev.dataDir in the config to a folder the OS user "${osUser?.name ?? 'running tenantctl'}" can reach`
          : 'fix the cause it names, then run `tenantctl dev up` again',
      );
    }
  } finally {
    await rm(pwfile, { force: true });
  }
  return true;
}

/**
 * Start an initialised cluster and wait until it accepts connections. The server runs detached
 * (its own session), so it keeps running after this process exits; stop it with stopCluster.
 *
 * @example
 *   await startCluster(spec); // server.log is in spec.dataDir
 */
export async function startCluster(spec: ClusterSpec): Promise<void> {
  const [bin, osUser] = await Promise.all([findBinaries(), clusterOsUser()]);
  if (!/^[A-Za-z0-9.:-]+$/.test(spec.host)) {
    // pg_ctl hands -o to a shell; an address never needs more than these characters.
    throw new TenantctlError(
      'DEV_FAILED',
      `listen address "${spec.host}" is not an IP address or host name`,
      'use 127.0.0.1 in the shard url',
    );
  }
  if (osUser) await ensureReachable(spec.dataDir, osUser);
  const settings = [
    `-p ${spec.port}`,
    // The Unix socket goes in the data directory, given relative to it (postgres runs there):
    // never over the 107-byte socket path limit, never in the system's /tmp or /run folders.
    // Clients use TCP via the shard URL anyway.
    '-k .',
    `-c listen_addresses=${spec.host}`,
    // fsync=off is safe for dev and tests: it only loses data if the machine itself crashes
    // (a crash of postgres alone loses nothing), and a dev fleet is rebuilt with `dev reset`.
    // It makes DDL-heavy work (provisioning, migrations across many schemas) several times faster.
    '-c fsync=off',
    // Online moves (move --online) stream a tenant's changes with logical replication, which needs
    // logical WAL on the source. The defaults of max_replication_slots and max_wal_senders (10)
    // and max_logical_replication_workers (4) are enough for a few moves at a time.
    '-c wal_level=logical',
  ];
  if (spec.testMode) {
    // Parallel test files each open pools; 100 connections run out. No WAL durability needed.
    settings.push('-c max_connections=200', '-c synchronous_commit=off');
    if (!spec.fullPageWrites) settings.push('-c full_page_writes=off');
  }
  const logFile = join(spec.dataDir, 'server.log');
  const result = await runAs(
    osUser,
    bin.pg_ctl,
    ['-D', spec.dataDir, '-l', logFile, '-o', settings.join(' '), '-w', '-t', String(PG_CTL_TIMEOUT_S), 'start'],
    { detached: true },
  );
  if (result.code !== 0) {
    const log = await readFile(logFile, 'utf8').catch(() => '');
    throw new TenantctlError(
      'DEV_FAILED',
      `PostgreSQL did not start on port ${spec.port}: ${lastLines(log || result.output, 5)}`,
      `see ${logFile}; if the cluster is damaged (e.g. an initdb that was interrupted), \`tenantctl dev reset\` recreates it, deleting its data`,
    );
  }
}

/**
 * Stop a running cluster ("fast": roll back open transactions, disconnect clients). Returns
 * false when it was not running.
 *
 * @example
 *   if (await stopCluster(dataDir)) console.log('stopped');
 */
export async function stopCluster(dataDir: string): Promise<boolean> {
  if ((await clusterStatus(dataDir)).state !== 'running') return false;
  const [bin, osUser] = await Promise.all([findBinaries(), clusterOsUser()]);
  const result = await runAs(osUser, bin.pg_ctl, ['-D', dataDir, '-m', 'fast', '-w', '-t', String(PG_CTL_TIMEOUT_S), 'stop']);
  if (result.code !== 0) {
    throw new TenantctlError(
      'DEV_FAILED',
      `pg_ctl stop failed for ${dataDir}: ${lastLines(result.output, 3)}`,
      `see ${join(dataDir, 'server.log')}`,
    );
  }
  return true;
}

/**
 * Why host:port cannot be listened on (`EADDRINUSE`, `EACCES`, ...), or undefined when it is
 * free. Binds the way postgres will, so it sees exactly the conflicts postgres would.
 *
 * @example
 *   await portProblem('127.0.0.1', 55431); // undefined, or 'EADDRINUSE'
 */
export function portProblem(host: string, port: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
    server.listen({ host: host === 'localhost' ? '127.0.0.1' : host, port, exclusive: true }, () => {
      server.close(() => resolve(undefined));
    });
  });
}

/**
 * Make dataDir exist, owned by the cluster's user with mode 0700 (postgres insists on both), and
 * check that the user can traverse every folder above it.
 */
async function prepareDataDir(dataDir: string, osUser: OsUser | undefined): Promise<void> {
  // Check before creating anything, so that a dataDir in the wrong place leaves nothing behind.
  if (osUser) await ensureReachable(dataDir, osUser);
  // Parents get 0755 (a recursive mkdir would give them the data directory's 0700 too).
  await mkdir(dirname(dataDir), { recursive: true, mode: 0o755 });
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  if (!osUser) return;
  await chown(dataDir, osUser.uid, osUser.gid);
  await chmod(dataDir, 0o700);
  // Again, now that they exist: a restrictive umask may have narrowed the folders we created.
  await ensureReachable(dataDir, osUser);
}

/** Throw a clear error naming the first folder above dataDir that osUser cannot enter. */
async function ensureReachable(dataDir: string, osUser: OsUser): Promise<void> {
  const blocked = await unreachableAncestor(dataDir, osUser);
  if (blocked) {
    throw new TenantctlError(
      'DEV_FAILED',
      `the OS user "${osUser.name}" that runs PostgreSQL cannot reach ${dataDir}: ${blocked} is not searchable by it`,
      `set dev.dataDir in the config to a folder "${osUser.name}" can reach (every parent needs o+x), or chmod o+x ${blocked}`,
    );
  }
}

/**
 * The first folder above dir that osUser may not search, judged by mode bits (we cannot call
 * access(2) as another user). Supplementary groups are ignored: child processes drop them.
 */
async function unreachableAncestor(dir: string, osUser: OsUser): Promise<string | undefined> {
  const chain: string[] = [];
  for (let d = dirname(dir); ; d = dirname(d)) {
    chain.unshift(d);
    if (dirname(d) === d) break;
  }
  for (const d of chain) {
    const s = await stat(d).catch(() => undefined);
    if (!s) break; // the rest does not exist yet; we create it searchable
    const bit = s.uid === osUser.uid ? 0o100 : s.gid === osUser.gid ? 0o010 : 0o001;
    if ((s.mode & bit) === 0) return d;
  }
  return undefined;
}

interface RunResult {
  code: number;
  /** stdout and stderr interleaved. */
  output: string;
}

/** Run a PostgreSQL program as osUser (when we are root), with a clean, predictable environment (also src/pitr/scratch.ts). */
export function runAs(osUser: OsUser | undefined, file: string, args: string[], opts: { detached?: boolean } = {}): Promise<RunResult> {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    // PGPORT, PGDATA, PGOPTIONS... would silently change what initdb and postgres do.
    if (!k.startsWith('PG')) env[k] = v;
  }
  // Messages in English and no complaints about locales this machine does not have.
  env.LC_ALL = 'C';
  env.LANG = 'C';
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, {
      env,
      // The cluster's user must be able to stand in the working directory: / always qualifies.
      cwd: '/',
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: opts.detached ?? false,
      ...(osUser ? { uid: osUser.uid, gid: osUser.gid } : {}),
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code: code ?? (signal ? 128 : 1), output }));
  });
}

/** Is pid a live postgres? On Linux the process name is checked, so a reused pid is not mistaken. */
async function isPostgresProcess(pid: number): Promise<boolean> {
  // EPERM counts as alive: someone else's (we are not root and it is not ours), still running.
  if (!isProcessAlive(pid)) return false;
  try {
    const comm = await readFile(`/proc/${pid}/comm`, 'utf8');
    return comm.trim() === 'postgres';
  } catch {
    return true; // no /proc (macOS): trust the signal check
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

function lastLines(text: string, n: number): string {
  return text.trim().split('\n').slice(-n).join(' | ');
}
