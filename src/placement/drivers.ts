import type { Model } from '../config/types.js';
import { database } from './database/driver.js';
import type { MigrationHooks } from './migration-hooks.js';
import { pool } from './pool/driver.js';
import { schema } from './schema/driver.js';
import type { PlacementDriver } from './types.js';

// The registry: one driver per model, each in its own folder (src/placement/<model>/driver.ts).
// A new model is a new folder and one line here.
export const drivers: Record<Model, PlacementDriver> = { pool, schema, database };

/** The migration hooks of a model. */
export function migrationHooks(model: Model): MigrationHooks {
  return drivers[model].migration;
}

export type { MigrationHooks } from './migration-hooks.js';
export type { OneTransactionSteps, PlacedTenant, PlacementDriver } from './types.js';
