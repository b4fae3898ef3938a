import { WAIT_HELP } from './wait-help.js';
import type { Command } from 'commander';
import { action } from '../run.js';
import { operationDeps } from '../operation-deps.js';

/** `tenant credentials`. */
export function registerTenantCredentials(tenant: Command): void {
  tenant
    .command('credentials <slug>')
    .description("set a new password for a schema or database tenant's role and print it once")
    .addHelpText(
      'after',
      '\nExamples:\n  tenantctl tenant credentials acme\n  tenantctl tenant credentials acme --rotate --json > acme-credentials.json\n',
    )
    .option('--rotate', 'replace the password the role has (the old one stops working at once)')
    .option('--wait', WAIT_HELP)
    .action(
      action('tenant credentials', async (ctx, slug: string, opts: { rotate?: boolean; wait?: boolean }) => {
        const { setTenantCredentials } = await import('../../provision/credentials.js');
        const { renderCredentials } = await import('../../report/credentials.js');
        const c = await setTenantCredentials(await operationDeps(ctx, { wait: opts.wait }), slug, { rotate: opts.rotate });
        renderCredentials(ctx.out, ctx.command, c);
      }),
    );
}
