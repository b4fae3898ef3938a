import type { Model } from '../config/types.js';
import { database } from './database/driver.js';
import type { MigrationHooks } from './migration-hooks.js';
import type { Placement, ShardDatabases } from './naming.js';
import { pool } from './pool/driver.js';
import { schema } from './schema/driver.js';
import type { PlacementDriver } from './types.js';

// The registry: one driver per model, each in its own folder (src/placement/<model>/driver.ts).
// A new model is a new folder and one line here.
export const drivers: Record<Model, PlacementDriver> = { pool, schema, database };

/** The placement a new tenant of this model gets on this shard (the driver names it). */
export function placementFor(slug: string, model: Model, shard: string, dbs: ShardDatabases): Placement {
  return { model, shard, ...drivers[model].names(slug, dbs) };
}

/** The migration hooks of a model. */
export function migrationHooks(model: Model): MigrationHooks {
  return drivers[model].migration;
}

export type { MigrationHooks } from './migration-hooks.js';
export type { OneTransactionSteps, PlacedTenant, PlacementDriver } from './types.js';
