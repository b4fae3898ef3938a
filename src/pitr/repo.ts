import { chown, mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import type { Config, Shard } from '../config/types.js';
import { UsageError } from '../errors.js';
import { devDataRoot, shardDataDir } from '../dev/data-root.js';
import { clusterOsUser, type OsUser } from '../dev/os-user.js';

/**
 * A region's pgBackRest repository as tenantctl uses it: the repository itself (a path, or
 * pgBackRest's own repo1-* options for S3), and a local folder of tenantctl's holding the config
 * file it writes (`pgbackrest.conf`: one stanza per shard), pgBackRest's lock and log folders.
 */
export interface PitrRepo {
  region: string;
  /** repo1-path. */
  repo: string;
  /** A filesystem repository (tenantctl creates it and checks its free space). */
  local: boolean;
  /** The config file archive_command and every pgBackRest call name. */
  configFile: string;
  /** Where restores to a point in time unpack a shard. */
  scratchRoot: string;
  options: Record<string, string | number>;
}

/** What pgBackRest needs to reach one shard's cluster (a stanza). */
export interface Stanza {
  shard: Shard;
  name: string;
  pgPath: string;
  socketPath: string;
  port: number;
  pgUser: string;
}

/**
 * The region's repository, or null when it has none. Embedded shards get one without any config
 * (next to the dev clusters), so `dev up` archives the embedded fleet's WAL.
 *
 * @example
 *   pitrRepo(config, 'us-east'); // { repo: '/repo/.tenantctl/dev/pgbackrest/us-east', configFile: '…/pgbackrest.conf', … }
 */
export function pitrRepo(config: Config, region: string): PitrRepo | null {
  const r = config.regions[region];
  if (!r) throw new UsageError('UNKNOWN_REGION', `unknown region "${region}"`, `use one of: ${Object.keys(config.regions).join(', ')}`);
  const options = r.pitr?.options ?? {};
  const local = !options['repo1-type'] || options['repo1-type'] === 'posix';
  let repo: string;
  if (r.pitr) repo = local && !isAbsolute(r.pitr.repo) ? resolve(config.baseDir, r.pitr.repo) : r.pitr.repo;
  else if (config.shards.some((s) => s.region === region && s.embedded)) repo = join(devDataRoot(config), 'pgbackrest', region);
  else return null;
  // Never inside the repository (pgBackRest owns its layout); beside it, or in the temp folder for S3.
  const own = local ? `${repo}.tenantctl` : join(tmpdir(), `tenantctl-pgbackrest-${region}`);
  const scratch = r.pitr?.scratch ? resolve(config.baseDir, r.pitr.scratch) : tmpdir();
  return { region, repo, local, configFile: join(own, 'pgbackrest.conf'), scratchRoot: scratch, options };
}

/** The region's repository, or a usage error naming the setting. */
export function requirePitrRepo(config: Config, region: string): PitrRepo {
  const repo = pitrRepo(config, region);
  if (!repo) {
    throw new UsageError(
      'PITR_NOT_CONFIGURED',
      `region ${region} has no pgBackRest repository`,
      `set regions.${region}.pitr.repo in ${config.file} (see the README's "Point-in-time restore")`,
    );
  }
  return repo;
}

/** The stanza of a shard: its name is the shard's; the cluster's folder and socket from the config or the dev fleet. */
export function stanzaOf(config: Config, shard: Shard): Stanza {
  const url = new URL(shard.url);
  const port = url.port ? Number(url.port) : 5432;
  if (shard.pitr) {
    return {
      shard,
      name: shard.name,
      pgPath: shard.pitr.pgPath,
      socketPath: shard.pitr.socketPath ?? '/var/run/postgresql',
      port,
      pgUser: shard.pitr.pgUser,
    };
  }
  if (!shard.embedded) {
    throw new UsageError(
      'PITR_NOT_CONFIGURED',
      `shard ${shard.name} does not say where its data directory is`,
      `set regions.${shard.region}.shards.${shard.name}.pitr.pgPath (and socketPath) in ${config.file}`,
    );
  }
  // The dev cluster's socket is in its data directory (src/dev/cluster.ts: -k .).
  const dir = shardDataDir(config, shard);
  return { shard, name: shard.name, pgPath: dir, socketPath: dir, port, pgUser: 'postgres' };
}

/**
 * pgBackRest's config for a region: the repository, tenantctl's lock and log folders, one stanza
 * per shard whose cluster it can name. Written by every pitr command and `dev up`, so it follows
 * the fleet config.
 */
export function configText(config: Config, repo: PitrRepo): string {
  const own = dirname(repo.configFile);
  const global: Record<string, string | number> = {
    'repo1-path': repo.repo,
    // Two full backups kept (and the WAL they need); the operator's options override.
    'repo1-retention-full': 2,
    'start-fast': 'y',
    'lock-path': join(own, 'lock'),
    'log-path': join(own, 'log'),
    'log-level-file': 'off',
    'log-level-console': 'warn',
    'compress-type': 'lz4',
    ...repo.options,
  };
  const lines = [`# Written by tenantctl (src/pitr/repo.ts); edits are overwritten. Region ${repo.region}`, '[global]'];
  for (const [k, v] of Object.entries(global)) lines.push(`${k}=${v}`);
  for (const shard of config.shards.filter((s) => s.region === repo.region)) {
    let st: Stanza;
    try {
      st = stanzaOf(config, shard);
    } catch {
      continue; // a shard that does not say where its cluster is has no stanza
    }
    lines.push(
      '',
      `[${st.name}]`,
      `pg1-path=${st.pgPath}`,
      `pg1-port=${st.port}`,
      `pg1-socket-path=${st.socketPath}`,
      `pg1-user=${st.pgUser}`,
    );
  }
  return `${lines.join('\n')}\n`;
}

/**
 * Write the region's pgBackRest config and make the folders pgBackRest writes, owned by the OS
 * user PostgreSQL runs as (archive_command runs as it).
 */
export async function writePitrConfig(config: Config, repo: PitrRepo): Promise<OsUser | undefined> {
  const user = await clusterOsUser();
  const own = dirname(repo.configFile);
  const dirs = [own, join(own, 'lock'), join(own, 'log'), ...(repo.local ? [repo.repo] : [])];
  for (const d of dirs) {
    // Parents passable by PostgreSQL's user; the folders themselves its own.
    await mkdir(dirname(d), { recursive: true, mode: 0o755 });
    await mkdir(d, { recursive: true, mode: 0o750 });
    if (user) await chown(d, user.uid, user.gid);
  }
  // It may hold the operator's S3 secret: readable by PostgreSQL's user only.
  await writeFile(repo.configFile, configText(config, repo), { mode: 0o600 });
  if (user) await chown(repo.configFile, user.uid, user.gid);
  return user;
}

/** The archive_command a shard's cluster needs. */
export function archiveCommand(repo: PitrRepo, stanza: string): string {
  return `pgbackrest --config=${repo.configFile} --stanza=${stanza} archive-push %p`;
}
