import type { Command } from 'commander';
import { sortNaturallyBy } from '../../report/natural-sort.js';
import { renderTenantList, streamTenantList } from '../../report/tenant.js';
import { addSelectorOptions, selectorFrom } from '../options.js';
import { action } from '../run.js';

/** `tenant list`. */
export function registerTenantList(tenant: Command): void {
  addSelectorOptions(tenant.command('list').description('tenants in the catalog'))
    .addHelpText('after', '\nExample:\n  tenantctl tenant list --region eu-west --model schema\n')
    .action(
      action('tenant list', async (ctx, opts: Record<string, unknown>) => {
        const { selectTenants, tenantPages } = await import('../../catalog/tenants.js');
        const { checkSelector } = await import('../selectors.js');
        const selector = selectorFrom(opts);
        const db = await ctx.catalog();
        await checkSelector(ctx.config, db, selector);
        // The document streams page by page (slug order; natural order when it fits in one page):
        // a catalog of 100,000 is never held.
        if (ctx.out.json) return streamTenantList(ctx.out, tenantPages(db, selector), (p) => sortNaturallyBy(p, (t) => t.slug));
        await renderTenantList(
          ctx.out,
          sortNaturallyBy(await selectTenants(db, selector), (t) => t.slug),
        );
      }),
    );
}
