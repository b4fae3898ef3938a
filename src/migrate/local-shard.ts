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
 * Connections that send several targets per message (target-batcher.ts) at once on a shard of
 * this machine: half of localShardTargets, one per core. A target on its own path waits for this
 * process between its statements, so two per core keep the cores busy; a shared message keeps its
 * backend busy from its first target to its last, and a second backend per core only contends.
 * Measured with psql sending the same messages over 5,000 schema targets of one database on 2
 * cores: 2 sessions took 2.5–2.7 CPU-s of the server, 4 took 3.4–4.1, 8 took 4.6–4.7, and 2 were
 * also the fastest (bench/README.md, 2026-12-06).
 *
 * @example localShardMessages(4) // 2
 */
export function localShardMessages(localTargets: number): number {
  return Math.max(1, Math.floor(localTargets / 2));
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
