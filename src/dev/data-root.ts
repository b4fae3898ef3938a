import { join, resolve } from 'node:path';
import type { Config, Shard } from '../config/types.js';
import { needsRelocation, relocatedPath } from './reachable.js';

/**
 * Where a shard's cluster lives: `<config folder>/<dev.dataDir>/<shard>`.
 *
 * @example
 *   shardDataDir(config, shard); // '/repo/.tenantctl/dev/us1'
 */
export function shardDataDir(config: Config, shard: Shard): string {
  return join(devDataRoot(config), shard.name);
}

/**
 * Where the embedded clusters keep their data: `dev.dataDir`, unless we run as root inside a
 * folder other users cannot enter (see reachable.ts); then a folder of its own under the temp
 * folder, named after the wanted path so that every `dev` command finds the same one.
 */
export function devDataRoot(config: Config): string {
  const wanted = resolve(config.baseDir, config.dev.dataDir);
  return needsRelocation(wanted) ? relocatedPath('dev', wanted) : wanted;
}
