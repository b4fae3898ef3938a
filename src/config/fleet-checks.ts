import { CATALOG_POOL_SIZE, MIN_SHARD_CONNECTIONS } from './connection-limits.js';
import { ADMIN_DATABASE, TENANT_DATABASE_PREFIX } from './database-names.js';
import { catalogShardName } from './catalog-shard.js';

/**
 * Checks across keys that the schema cannot make one key at a time: database names that would
 * collide on a cluster, and connection budgets too small for the catalog plus one target. Each
 * problem is `path: message`, as the loader reports them.
 */
export interface CheckedShard {
  name: string;
  region: string;
  url: string;
  maxConnections: number;
  poolDatabase: string;
  tenantDatabase: string;
}

/** `t_`: every database tenant's database is `t_<slug>` (src/placement/naming.ts). */
const TENANT_DB_PREFIX = TENANT_DATABASE_PREFIX;

export function fleetProblems(
  config: { catalog: { shard?: string; url?: string; host?: string; database: string }; catalogUrl: string },
  shards: readonly CheckedShard[],
): string[] {
  const problems: string[] = [];
  const catalogShard = catalogShardName(config, shards);
  const catalogDb = catalogDatabase(config);
  const catalogPath = config.catalog.url ? 'catalog.url' : 'catalog.database';

  const reserved = reservedName(catalogDb);
  if (reserved) problems.push(`${catalogPath}: the catalog database "${catalogDb}" ${reserved}`);

  for (const s of shards) {
    const at = `regions.${s.region}.shards.${s.name}`;
    for (const key of ['poolDatabase', 'tenantDatabase'] as const) {
      const db = s[key];
      const why =
        reservedName(db) ??
        (db === ADMIN_DATABASE ? "is the cluster's maintenance database, where tenantctl creates and drops databases" : undefined);
      if (why) problems.push(`${at}.${key}: "${db}" ${why}; pick another name`);
      else if (s.name === catalogShard && db === catalogDb) {
        problems.push(`${at}.${key}: "${db}" is also the catalog database on this shard (${catalogPath}); pick another name`);
      }
    }
    if (s.poolDatabase === s.tenantDatabase) {
      problems.push(
        `${at}.tenantDatabase: "${s.tenantDatabase}" is also the poolDatabase; the pool and schema models need a database each`,
      );
    }
    // One tenant operation holds up to MIN_SHARD_CONNECTIONS connections to one shard at once (a
    // move between models on the same shard); fewer and it would wait for itself forever. The
    // catalog keeps its own pool of CATALOG_POOL_SIZE on its cluster besides (src/fleet/fleet.ts
    // keeps tenant work to the rest).
    const hostsCatalog = s.name === catalogShard;
    const needed = MIN_SHARD_CONNECTIONS + (hostsCatalog ? CATALOG_POOL_SIZE : 0);
    if (s.maxConnections < needed) {
      const catalog = hostsCatalog ? `this shard hosts the catalog, which holds ${CATALOG_POOL_SIZE} connections, and ` : '';
      problems.push(
        `${at}.maxConnections: ${s.maxConnections} is too small: ${catalog}one tenant operation holds up to ${MIN_SHARD_CONNECTIONS} connections to one shard at once (a move between models on the same shard: the source's write fence, its snapshot and the target), so a smaller budget would wait for itself forever; set it to ${needed} or more`,
      );
    }
  }
  return problems;
}

/** Why a name cannot be one of tenantctl's own databases, or undefined when it can. */
function reservedName(db: string): string | undefined {
  if (db.startsWith(TENANT_DB_PREFIX)) {
    return `looks like a database tenant's database (${TENANT_DB_PREFIX}<slug>), which deleting that tenant would drop`;
  }
  if (/^template/.test(db)) return 'is a name PostgreSQL keeps for template databases';
  return undefined;
}

function catalogDatabase(config: { catalog: { url?: string; database: string } }): string {
  if (!config.catalog.url) return config.catalog.database;
  try {
    return decodeURIComponent(new URL(config.catalog.url).pathname.slice(1)) || 'postgres';
  } catch {
    return config.catalog.database;
  }
}
