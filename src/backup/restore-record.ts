import type { PlacedTenant } from '../placement/drivers.js';
import type { RestorePlacement } from './types.js';

export type { RestorePlacement } from './types.js';

export function placementRecord(p: PlacedTenant): RestorePlacement {
  return { model: p.model, shard: p.shard, database_name: p.database_name, schema_name: p.schema_name, key: p.key };
}
