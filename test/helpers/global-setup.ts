import type { TestProject } from 'vitest/node';
import { makeClusterTemplate } from './cluster-template.js';
import { HOSTILE_PASSWORD, OWNER_FILE, PREFIX, reapStaleFleets, startTestFleet } from './test-fleet.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Path of the shared test fleet's config file: `loadConfig({ file: inject('fleetConfigFile') })`. */
    fleetConfigFile: string;
    /** The fleet's superuser password (decoded), so tests can assert it never appears in output. */
    fleetPassword: string;
  }
}

/**
 * vitest globalSetup of the integration project: ONE fleet of 3 embedded clusters for the whole
 * suite (initdb costs about a second per cluster). Test files run in parallel against it, so each
 * must use its own tenant slugs.
 *
 * @example
 *   // in a test file
 *   import { inject } from 'vitest';
 *   const config = loadConfig({ file: inject('fleetConfigFile') });
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  await reapStaleFleets();
  // One initdb; every fleet of the run, this one included, starts from copies of it.
  const template = await makeClusterTemplate(PREFIX, OWNER_FILE, HOSTILE_PASSWORD);
  const fleet = await startTestFleet({ template: template.dataDir });
  project.provide('fleetConfigFile', fleet.configFile);
  project.provide('fleetPassword', fleet.password);
  project.provide('clusterTemplate', template.dataDir);
  return async () => {
    await fleet.stop();
    await template.remove();
  };
}
