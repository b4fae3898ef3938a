import type { Command } from 'commander';
import { renderTenantShow } from '../../report/tenant.js';
import { action } from '../run.js';

/** `tenant show`. */
export function registerTenantShow(tenant: Command): void {
  tenant
    .command('show <slug>')
    .description('one tenant, its placement, what killed operations of it left, a move not yet completed, and its recent events')
    .addHelpText('after', '\nExample:\n  tenantctl tenant show acme\n')
    .action(
      action('tenant show', async (ctx, slug: string) => {
        const { getTenant } = await import('../../catalog/tenants.js');
        const { recentEvents } = await import('../../catalog/events.js');
        const { killedOperationsOf } = await import('../../operations/killed-of-tenant.js');
        const { switchedMoveOf } = await import('../../move/switched-of-tenant.js');
        const db = await ctx.catalog();
        const t = await getTenant(db, slug);
        renderTenantShow(ctx.out, t, await recentEvents(db, slug), await killedOperationsOf(db, slug), await switchedMoveOf(db, slug));
      }),
    );
}
