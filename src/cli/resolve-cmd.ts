import type { Command } from 'commander';
import { action } from './run.js';

export function registerResolveCommand(program: Command): void {
  program
    .command('resolve <slug>')
    .description('where a tenant lives and what its application connects with (passwords redacted)')
    .option('--admin', "also print tenantctl's own (admin) URL for the tenant's database")
    .addHelpText('after', '\nExample:\n  tenantctl resolve acme --json\n')
    .action(
      action('resolve', async (ctx, slug: string, opts: { admin?: boolean }) => {
        const { getTenant } = await import('../catalog/tenants.js');
        const { credentialsNote, resolveTenant } = await import('../placement/resolve.js');
        const { tenantRolePassword } = await import('../placement/credentials.js');
        const { renderResolved } = await import('../report/resolve.js');
        const t = await getTenant(await ctx.catalog(), slug);
        const r = resolveTenant(ctx.config, t, { admin: opts.admin });
        renderResolved(ctx.out, { ...r, credentials: credentialsNote(ctx.config, t, await tenantRolePassword(await ctx.fleet(), t)) });
      }),
    );
}
