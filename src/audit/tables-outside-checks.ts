import type { TenantRow } from '../catalog/tables.js';
import type { Config } from '../config/types.js';
import type { ShardClient } from '../fleet/shard-connections.js';
import { tablesLeftBehind } from '../placement/tables-left-behind.js';
import { finding } from './registry.js';
import type { Finding } from './types.js';

/**
 * Tables holding tenants' rows outside the schema tenantctl copies (placement/tables-left-behind.ts):
 * a database tenant's moves, backups and restore --at are refused while one is there (a nightly
 * backup would find it too late); in the shared databases moves and deletes leave its rows where
 * they are, and in a pool row-level security does not cover it.
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
      message:
        model === 'database'
          ? `${name} is ${where}: tenantctl copies only ${schema}, so its moves, backups and restore --at are refused while it is there (move complete would drop it with the source database)`
          : `${name} is ${where}: tenantctl copies only ${model === 'schema' ? "each tenant's schema" : schema}, so moves, backups and deletes of the tenants here leave its rows where they are${model === 'pool' ? ', and row-level security does not protect it' : ''}`,
      fix: `-- move it into the tenant schema in a migration (alter table ${name} set schema ${model === 'schema' ? '<tenant schema>' : schema}), with its rows`,
    }),
  );
}
