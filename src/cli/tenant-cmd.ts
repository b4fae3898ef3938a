import type { Command } from 'commander';
import { publicTenant } from '../report/tenant.js';
import { registerTenantCreate } from './tenant/create.js';
import { registerTenantList } from './tenant/list.js';
import { registerTenantShow } from './tenant/show.js';
import { registerTenantRename } from './tenant/rename.js';
import { registerTenantCredentials } from './tenant/credentials.js';
import { registerTenantDelete } from './tenant/delete.js';
import { registerTenantSuspendResume } from './tenant/suspend.js';

export function registerTenantCommands(program: Command): void {
  const tenant = program.command('tenant').description('provision and manage tenants');
  registerTenantCreate(tenant);
  registerTenantList(tenant);
  registerTenantShow(tenant);
  registerTenantSuspendResume(tenant);
  registerTenantRename(tenant);
  registerTenantCredentials(tenant);
  registerTenantDelete(tenant);
}

// Kept importable from here; the renderer lives in src/report/tenant.ts.
export { publicTenant };
