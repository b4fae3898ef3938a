import { availableParallelism } from 'node:os';
import type { Shard } from '../config/types.js';

/**
 * Targets migrated at once on a shard that runs on this machine, when `--concurrency` (or
 * TENANTCTL_CONCURRENCY) was not given: 2 per core. Such a shard's backends share the cores with
 * tenantctl itself, and DDL backends beyond that contend for them (shared catalog locks, cache
 * invalidations) without finishing sooner: on 2 cores, 4 targets at once beat 8 over 5,000
 * schema targets (bench/README.md, migrate-schemas). A shard elsewhere keeps the fan-out's width,
 * which hides network latency.
 *
 * @example localShardTargets(2) // 4
 */
export function localShardTargets(cores = availableParallelism()): number {
  return 2 * Math.max(1, cores);
}

/**
 * Whether the shard's URL points at this machine: a loopback host (localhost, 127.0.0.0/8, ::1)
 * or a Unix socket (`?host=/path` or an empty host). Pure: no name is resolved.
 *
 * @example isLocalShard({ url: 'postgres://u@127.0.0.1:5432/postgres' }) // true
 */
export function isLocalShard(shard: Pick<Shard, 'url'>): boolean {
  let u: URL;
  try {
    u = new URL(shard.url);
  } catch {
    return false;
  }
  const socket = u.searchParams.get('host');
  if (socket !== null) return socket.startsWith('/') || isLoopback(socket);
  return u.hostname === '' || isLoopback(u.hostname);
}

function isLoopback(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[|\]$/g, '');
  return h === 'localhost' || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}
