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
        // Compiled while the catalog connects, not one after the other.
        const [{ getTenant }, { credentialsNote, resolveTenant }, { tenantRolePassword }, { renderResolved }, db, fleet] =
          await Promise.all([
            import('../catalog/tenants.js'),
            import('../placement/resolve.js'),
            import('../placement/credentials.js'),
            import('../report/resolve.js'),
            ctx.catalog(),
            ctx.fleet(), // its module only: it connects on first use
          ]);
        const t = await getTenant(db, slug);
        const r = resolveTenant(ctx.config, t, { admin: opts.admin });
        renderResolved(ctx.out, { ...r, credentials: credentialsNote(ctx.config, t, await tenantRolePassword(fleet, t)) });
      }),
    );
}
