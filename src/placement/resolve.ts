import type { TenantRow } from '../catalog/tables.js';
import type { Config } from '../config/types.js';
import { redactUrl } from '../config/redact.js';
import { databaseUrl, shardEndpoint } from '../fleet/connection-url.js';
import { targetId } from './naming.js';

export interface Resolved {
  tenant: string;
  status: string;
  model: string;
  region: string;
  shard: string;
  host: string;
  port: number;
  database: string;
  schema: string;
  target: string;
  /** The connection URL of the tenant's database, password redacted. */
  url: string;
  /** How the application scopes to the tenant there. */
  scope: string;
}

/**
 * Where a tenant lives, from the catalog and the config.
 *
 * @example
 *   resolveTenant(config, row).url // 'postgres://postgres:***@127.0.0.1:55431/tenant_schemas'
 */
export function resolveTenant(config: Config, t: TenantRow): Resolved {
  const shard = config.shards.find((s) => s.name === t.shard);
  if (!shard) throw new Error(`tenant ${t.slug} is on shard ${t.shard}, which is not in the config`);
  const ep = shardEndpoint(shard);
  const scope =
    t.model === 'pool'
      ? `set ${config.rls.setting} = '${t.key}' (row-level security on ${t.schema_name}.*)`
      : `search_path = ${t.schema_name}`;
  return {
    tenant: t.slug,
    status: t.status,
    model: t.model,
    region: t.region,
    shard: t.shard,
    host: ep.host,
    port: ep.port,
    database: t.database_name,
    schema: t.schema_name,
    target: targetId({ shard: t.shard, database: t.database_name, schema: t.schema_name }),
    url: redactUrl(databaseUrl(shard.url, t.database_name)),
    scope,
  };
}
