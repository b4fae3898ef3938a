import type { Shard } from '../config/types.js';

/** The shard's URL pointed at another database on the same cluster. */
export function databaseUrl(shardUrl: string, database: string): string {
  const u = new URL(shardUrl);
  u.pathname = `/${encodeURIComponent(database)}`;
  return u.toString();
}

/** Host, port and user of a shard, for `resolve` and error messages (never the password). */
export function shardEndpoint(shard: Shard): { host: string; port: number; user: string } {
  const u = new URL(shard.url);
  return { host: u.hostname, port: Number(u.port || 5432), user: decodeURIComponent(u.username) };
}
