import { readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { shardDataDir } from './data-root.js';
import { redactText } from '../config/redact.js';
import type { Config, Shard } from '../config/types.js';
import { TenantctlError, UsageError, errorMessage } from '../errors.js';
import { clusterStatus, initCluster, portProblem, startCluster, stopCluster, type ClusterSpec, type ClusterStatus } from './cluster.js';
import { ensureShardRole } from './shard-role.js';
import { ensureDevStanza, prepareDevArchiving } from '../pitr/dev-archiving.js';

/**
 * The embedded development fleet: one local cluster per `embedded: true` shard of the config.
 * Each function returns one result per shard and never prints; the `dev` command renders them.
 * Problems that make the whole request wrong (a taken port, a url that cannot be served locally)
 * are thrown as UsageError before anything changes.
 */

export type DevState = 'started' | 'already running' | 'stopped' | 'not running' | 'running' | 'reset' | 'failed';

export interface DevShardResult {
  shard: string;
  region: string;
  port: number;
  dataDir: string;
  state: DevState;
  /** Why it failed (redacted), when state is 'failed'. */
  error?: string;
}

export interface DevOptions {
  /** Settings for the integration-test fleet: more connections, no durability. */
  testMode?: boolean;
  /**
   * Archive WAL with pgBackRest when it is installed (src/pitr/dev-archiving.ts): `tenantctl dev
   * up` asks for it; test fleets only with startTestFleet({ archive: true }).
   */
  archive?: boolean;
}

/**
 * Start every embedded shard's cluster, creating it first if needed. Already-running clusters
 * are left alone; all shards start in parallel.
 *
 * @example
 *   const results = await devUp(loadConfig());
 *   // [{ shard: 'us1', region: 'us-east', port: 55431, dataDir: '/repo/.tenantctl/dev/us1', state: 'started' }, ...]
 * @throws UsageError DEV_PORT_TAKEN when a shard's port is used by another program
 */
export async function devUp(config: Config, opts: DevOptions = {}): Promise<DevShardResult[]> {
  const planned = await plan(config, opts);
  return Promise.all(
    planned.map((p) =>
      settle(p, async () => {
        if (p.status.state === 'running') {
          if (p.status.port === p.spec.port) {
            await ensureShardRole(p.spec);
            return 'already running';
          }
          // Running, but the url's port changed since it started: move it to the new port.
          await stopCluster(p.spec.dataDir);
        }
        await initCluster(p.spec);
        const archiving = opts.archive && (await prepareDevArchiving(config, p.shardRow, p.spec.dataDir));
        await startCluster({ ...p.spec, ...(archiving ? { fullPageWrites: true } : {}) });
        await ensureShardRole(p.spec);
        if (archiving) await ensureDevStanza(config, p.shardRow);
        return 'started';
      }),
    ),
  );
}

/**
 * Stop every embedded shard's cluster (fast shutdown). Data is kept.
 *
 * @example
 *   await devDown(config); // [{ shard: 'us1', state: 'stopped', ... }, { shard: 'eu1', state: 'not running', ... }]
 */
export async function devDown(config: Config): Promise<DevShardResult[]> {
  return Promise.all(
    embeddedShards(config).map((shard) => {
      const base = describe(config, shard);
      return settle(base, async () => ((await stopCluster(base.dataDir)) ? 'stopped' : 'not running'));
    }),
  );
}

/**
 * Whether each embedded shard's cluster is running. The port is the one it actually listens on.
 *
 * @example
 *   (await devStatus(config)).every((r) => r.state === 'running');
 */
export async function devStatus(config: Config): Promise<DevShardResult[]> {
  return Promise.all(
    embeddedShards(config).map(async (shard) => {
      const base = describe(config, shard);
      try {
        const status = await clusterStatus(base.dataDir);
        return status.state === 'running'
          ? { ...base, port: status.port ?? base.port, state: 'running' as const }
          : { ...base, state: 'not running' as const };
      } catch (err) {
        return { ...base, state: 'failed' as const, error: explain(err) };
      }
    }),
  );
}

/**
 * Stop every embedded cluster, delete its data directory and create it afresh. Destructive: the
 * caller asks for confirmation (`--yes`).
 *
 * @example
 *   await devReset(config); // every state 'reset', or 'failed' with the reason
 */
export async function devReset(config: Config, opts: DevOptions = {}): Promise<DevShardResult[]> {
  const planned = await plan(config, opts);
  return Promise.all(
    planned.map((p) =>
      settle(p, async () => {
        await stopCluster(p.spec.dataDir);
        await removeDataDir(p.spec.dataDir);
        await initCluster(p.spec);
        await startCluster(p.spec);
        await ensureShardRole(p.spec);
        return 'reset';
      }),
    ),
  );
}

/** The shards the dev fleet manages, in config order. */
export function embeddedShards(config: Config): Shard[] {
  return config.shards.filter((s) => s.embedded);
}

// Where clusters live: src/dev/data-root.ts (src/pitr/ needs it without the fleet's imports).
export { devDataRoot, shardDataDir } from './data-root.js';

type Described = Omit<DevShardResult, 'state' | 'error'>;

interface Planned extends Described {
  shardRow: Shard;
  spec: ClusterSpec;
  status: ClusterStatus;
}

/**
 * Validate everything up front (urls, duplicate ports, ports taken by other programs) and
 * report every problem in one error, so that a bad request changes nothing.
 */
async function plan(config: Config, opts: DevOptions): Promise<Planned[]> {
  const problems: string[] = [];
  const specs: Array<{ shard: Shard; spec: ClusterSpec }> = [];
  for (const shard of embeddedShards(config)) {
    const spec = clusterSpec(config, shard, opts, problems);
    if (spec) specs.push({ shard, spec });
  }
  const byPort = new Map<number, string>();
  for (const { shard, spec } of specs) {
    const other = byPort.get(spec.port);
    if (other)
      problems.push(`${urlPath(shard)}: port ${spec.port} is also the port of shard ${other}; give each embedded shard its own port`);
    byPort.set(spec.port, shard.name);
  }
  if (problems.length > 0) {
    throw new UsageError(
      'CONFIG_INVALID',
      `${config.file}: the embedded shards cannot run as configured:\n  ${problems.map(redactText).join('\n  ')}`,
      'fix each listed url',
    );
  }

  const planned = await Promise.all(
    specs.map(async ({ shard, spec }) => ({
      ...describe(config, shard),
      shardRow: shard,
      spec,
      status: await clusterStatus(spec.dataDir),
    })),
  );

  // A cluster of ours already on its port is fine; any other listener is not.
  const taken = await Promise.all(
    planned.map(async (p) => {
      if (p.status.state === 'running' && p.status.port === p.spec.port) return undefined;
      const why = await portProblem(p.spec.host, p.spec.port);
      return why ? { p, why } : undefined;
    }),
  );
  const conflicts = taken.filter((t) => t !== undefined);
  if (conflicts.length > 0) {
    const lines = conflicts.map(({ p, why }) =>
      why === 'EADDRINUSE'
        ? `shard ${p.shard}: port ${p.port} is already in use by another program`
        : `shard ${p.shard}: cannot listen on ${p.spec.host}:${p.port} (${why})`,
    );
    const fixes = conflicts.map(({ p }) => `TENANTCTL_DEV_PORT_${envName(p.shard)}=<free port>`);
    throw new UsageError(
      'DEV_PORT_TAKEN',
      lines.join('\n'),
      `stop the program using it, or pick a free port: set ${fixes.join(' ')} (the shipped config reads these), ` +
        `or change the port in the shard's url in ${config.file}`,
    );
  }
  return planned;
}

/** The cluster parameters from a shard url; problems are pushed, not thrown, to report all at once. */
function clusterSpec(config: Config, shard: Shard, opts: DevOptions, problems: string[]): ClusterSpec | undefined {
  const where = urlPath(shard);
  let url: URL;
  try {
    url = new URL(shard.url);
  } catch {
    problems.push(`${where}: not a valid URL`);
    return undefined;
  }
  // URL keeps IPv6 literals in brackets; listen_addresses wants them bare.
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  if (!isLoopback(host)) {
    problems.push(
      `${where}: an embedded shard runs on this machine, so its host must be 127.0.0.1, ::1 or localhost, not "${host}" (or set embedded: false)`,
    );
  }
  let user: string;
  let password: string;
  try {
    user = decodeURIComponent(url.username);
    password = decodeURIComponent(url.password);
  } catch {
    problems.push(`${where}: the user or password has a % not followed by two hex digits (write %25 for a literal %)`);
    return undefined;
  }
  if (!user || !password) {
    problems.push(`${where}: an embedded shard needs a user and a password in its url (postgres://USER:PASSWORD@127.0.0.1:PORT/postgres)`);
  }
  return {
    dataDir: shardDataDir(config, shard),
    host,
    port: url.port ? Number(url.port) : 5432,
    user,
    password,
    testMode: opts.testMode,
  };
}

function describe(config: Config, shard: Shard): Described {
  let port = 5432;
  try {
    const url = new URL(shard.url);
    if (url.port) port = Number(url.port);
  } catch {
    /* validated by the config loader; describe() must not throw for `down` and `status` */
  }
  return { shard: shard.name, region: shard.region, port, dataDir: shardDataDir(config, shard) };
}

/** Run one shard's work and turn any error into a 'failed' result: one shard never sinks the rest. */
async function settle(base: Described, work: () => Promise<DevState>): Promise<DevShardResult> {
  // Copy the public fields only: a Planned also carries the spec, whose password must not leak.
  const described: Described = { shard: base.shard, region: base.region, port: base.port, dataDir: base.dataDir };
  try {
    return { ...described, state: await work() };
  } catch (err) {
    return { ...described, state: 'failed', error: explain(err) };
  }
}

function explain(err: unknown): string {
  const hint = err instanceof TenantctlError && err.hint ? ` (${err.hint})` : '';
  return redactText(`${errorMessage(err)}${hint}`);
}

/**
 * Delete a cluster's data directory, but only one that is plainly a PostgreSQL data directory
 * (or empty): a mistyped dev.dataDir must never cost someone a folder of their own files.
 */
async function removeDataDir(dataDir: string): Promise<void> {
  let entries: string[];
  try {
    entries = await readdir(dataDir);
  } catch {
    return; // nothing there
  }
  if (entries.length > 0 && !(await isFile(join(dataDir, 'PG_VERSION')))) {
    throw new TenantctlError(
      'DEV_FAILED',
      `${dataDir} is not a PostgreSQL data directory; refusing to delete it`,
      'check dev.dataDir in the config, or remove the folder yourself',
    );
  }
  await rm(dataDir, { recursive: true, force: true });
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/** The config path of a shard's url, the way config errors name keys. */
function urlPath(shard: Shard): string {
  return `regions.${shard.region}.shards.${shard.name}.url`;
}

/** `eu-1` → `EU_1`, the suffix of TENANTCTL_DEV_PORT_<SHARD>. */
function envName(shard: string): string {
  return shard.toUpperCase().replace(/-/g, '_');
}
