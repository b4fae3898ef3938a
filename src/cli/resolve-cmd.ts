import type { Command } from 'commander';
import { action } from './run.js';

export function registerResolveCommand(program: Command): void {
  program
    .command('resolve <slug>')
    .description('where a tenant lives and what its application connects with (passwords redacted)')
    .option('--admin', "also print tenantctl's own (admin) URL for the tenant's database")
    .addHelpText('before', 'Example:\n  tenantctl resolve acme --json\n')
    .action(
      action('resolve', async (ctx, slug: string, opts: { admin?: boolean }) => {
        const { getTenant } = await import('../catalog/tenants.js');
        const { resolveTenant } = await import('../placement/resolve.js');
        const r = resolveTenant(ctx.config, await getTenant(await ctx.catalog(), slug), { admin: opts.admin });
        if (ctx.out.json) ctx.out.document({ command: 'resolve', ok: true, ...r });
        else {
          const rows = Object.entries(r).map(([k, v]) => [k, typeof v === 'object' ? `${v.name} = ${v.value}` : String(v)]);
          ctx.out.print(rows.map(([k, v]) => `${k.padEnd(9)} ${v}`).join('\n'));
        }
      }),
    );
}
