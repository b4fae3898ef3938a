import type { Model } from '../config/types.js';
import type { PlacedTenant } from '../placement/drivers.js';

/** What a restore records before it makes anything: where its fresh placement goes (the sweep reads it back). */
export interface RestorePlacement {
  model: Model;
  shard: string;
  database_name: string;
  schema_name: string;
  key: string;
}

export function placementRecord(p: PlacedTenant): RestorePlacement {
  return { model: p.model, shard: p.shard, database_name: p.database_name, schema_name: p.schema_name, key: p.key };
}
