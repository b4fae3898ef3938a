import { WAIT_HELP } from './wait-help.js';
import type { Command } from 'commander';
import { renderTenantDeleted } from '../../report/tenant.js';
import { confirmDestructive } from '../confirm.js';
import { action } from '../run.js';
import { operationDeps } from '../operation-deps.js';

/** `tenant delete`. */
export function registerTenantDelete(tenant: Command): void {
  tenant
    .command('delete <slug>')
    .description("remove a tenant's placement (or pool rows) and its catalog entry")
    .addHelpText('after', '\nExample:\n  tenantctl tenant delete acme --yes\n')
    .option('--yes', 'confirm without asking')
    .option('--skip-backup', 'delete without the final backup taken by default')
    .option('--wait', WAIT_HELP)
    .action(
      action('tenant delete', async (ctx, slug: string, opts: { yes?: boolean; wait?: boolean; skipBackup?: boolean }) => {
        const { getTenant } = await import('../../catalog/tenants.js');
        const db = await ctx.catalog();
        const t = await getTenant(db, slug);
        await confirmDestructive(ctx, opts.yes, `delete tenant ${slug} and all its data (${t.model} on ${t.shard})`);
        const { deleteTenant } = await import('../../provision/lifecycle.js');
        const gone = await deleteTenant(await operationDeps(ctx, { wait: opts.wait }), slug, { skipBackup: opts.skipBackup });
        renderTenantDeleted(ctx.out, ctx.command, gone, gone.finalBackup);
      }),
    );
}
