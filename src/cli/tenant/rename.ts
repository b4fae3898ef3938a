import { WAIT_HELP } from './wait-help.js';
import type { Command } from 'commander';
import { UsageError } from '../../errors.js';
import { escapeControl } from '../../report/escape.js';
import { renderTenantChanged } from '../../report/tenant.js';
import { action } from '../run.js';
import { operationDeps } from '../operation-deps.js';

/** `tenant rename`. */
export function registerTenantRename(tenant: Command): void {
  tenant
    .command('rename <slug> [new-slug]')
    .description("change a tenant's display name (--name); its slug stays: roles, schemas, backups and keys are named by it")
    .addHelpText('after', '\nExample:\n  tenantctl tenant rename acme --name "Acme Corporation"\n')
    .option('--name <name>', 'the new display name, at most 200 characters')
    .option('--wait', WAIT_HELP)
    .action(
      action('tenant rename', async (ctx, slug: string, newSlug: string | undefined, opts: { name?: string; wait?: boolean }) => {
        const { renameTenant, SLUG_IS_IDENTITY } = await import('../../provision/rename.js');
        if (newSlug !== undefined)
          throw new UsageError(
            'USAGE',
            SLUG_IS_IDENTITY,
            `change the display name: tenantctl tenant rename ${slug} --name "…"; or copy the data to a new tenant: tenantctl backup create ${slug}, tenantctl restore <backup> --as ${newSlug}, then tenantctl tenant delete ${slug}`,
          );
        if (opts.name === undefined)
          throw new UsageError('USAGE', 'tenant rename needs --name', `tenantctl tenant rename ${slug} --name "Acme Corporation"`);
        const r = await renameTenant(await operationDeps(ctx, { wait: opts.wait }), slug, opts.name);
        const [to, from] = [r.tenant.name, r.from].map((n) => `"${escapeControl(n)}"`);
        const line = r.changed ? `${slug} is now named ${to} (was ${from})` : `${slug} is already named ${from}; nothing to do`;
        renderTenantChanged(ctx.out, ctx.command, r.tenant, line, { changed: r.changed, from: r.from });
      }),
    );
}
