/**
 * Which shard's cluster holds the catalog database: the one named by `catalog.shard`, or the shard
 * whose host and port are those of `catalog.url` (or catalog.host/port). Its connection budget
 * must also hold the catalog's connections, so the config check (fleet-checks.ts) and the
 * connection budgets (src/fleet/fleet.ts) ask this one function.
 *
 * @example
 *   catalogShardName({ catalog: { shard: 'us1' }, catalogUrl }, shards) // 'us1'
 */
export function catalogShardName(
  config: { catalog: { shard?: string }; catalogUrl: string },
  shards: readonly { name: string; url: string }[],
): string | undefined {
  if (config.catalog.shard) return config.catalog.shard;
  const catalog = endpoint(config.catalogUrl);
  return shards.find((s) => endpoint(s.url) === catalog)?.name;
}

function endpoint(url: string): string | undefined {
  try {
    const u = new URL(url);
    return `${u.hostname}:${u.port || '5432'}`;
  } catch {
    return undefined;
  }
}
