import type { TenantRow } from '../catalog/tables.js';
import type { Config } from '../config/types.js';
import type { ShardClient } from '../fleet/shard-connections.js';
import { tablesLeftBehind } from '../placement/tables-left-behind.js';
import { finding } from './registry.js';
import type { Finding } from './types.js';

/**
 * Tables holding tenants' rows outside the schema tenantctl copies (placement/tables-left-behind.ts):
 * row-level security does not cover them in a pool, and every move, backup and restore --at of the
 * tenants there is refused while they exist, which a nightly backup finds too late.
 */
export async function tablesOutsideSchema(
  c: ShardClient,
  at: { shard: string; database: string; tenant?: string | null },
  schema: string,
  model: TenantRow['model'],
  config: Pick<Config, 'tenantKey' | 'servingRole'>,
): Promise<Finding[]> {
  const names = await tablesLeftBehind(c, schema, config, model);
  const where =
    model === 'database'
      ? `in tenant ${at.tenant}'s own database outside its schema ${schema}`
      : `outside the ${model === 'pool' ? 'pool schema' : "tenants' schemas"}, carrying the tenant key ${config.tenantKey.column}`;
  return names.map((name) =>
    finding('placement.table-outside-schema', {
      ...at,
      tenant: at.tenant ?? null,
      object: name,
      message: `${name} is ${where}: tenantctl copies only ${model === 'schema' ? "each tenant's schema" : schema}, so moves, backups and restore --at of ${model === 'database' ? 'this tenant' : 'the tenants here'} are refused while it holds their rows${model === 'pool' ? ', and row-level security does not protect it' : ''}`,
      fix: `-- move it into the tenant schema in a migration (alter table ${name} set schema ${model === 'schema' ? '<tenant schema>' : schema}), with its rows`,
    }),
  );
}
