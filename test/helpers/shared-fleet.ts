import { inject } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import type { TestFleet } from './test-fleet.js';

/**
 * The suite's shared fleet (started by global-setup.ts) as a TestFleet for `migrateEnv`: an
 * environment of its own (catalog, pool and schema databases) on it, and a `stop` that leaves
 * the fleet to the global teardown.
 *
 * @example
 *   const e = await migrateEnv(sharedFleet(), 'rp');
 */
export function sharedFleet(): TestFleet {
  return {
    config: loadConfig({ file: inject('fleetConfigFile') }),
    configFile: inject('fleetConfigFile'),
    dir: '',
    password: inject('fleetPassword'),
    stop: async () => undefined,
  };
}
