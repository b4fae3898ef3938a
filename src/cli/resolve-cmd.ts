import type { Command } from 'commander';
import { action } from './run.js';

export function registerResolveCommand(program: Command): void {
  program
    .command('resolve <slug>')
    .description('where a tenant lives (URL redacted)')
    .addHelpText('before', 'Example:\n  tenantctl resolve acme --json\n')
    .action(
      action('resolve', async (ctx, slug: string) => {
        const { getTenant } = await import('../catalog/tenants.js');
        const { resolveTenant } = await import('../placement/resolve.js');
        const r = resolveTenant(ctx.config, await getTenant(await ctx.catalog(), slug));
        if (ctx.out.json) ctx.out.document({ command: 'resolve', ok: true, ...r });
        else ctx.out.print(Object.entries(r).map(([k, v]) => `${k.padEnd(9)} ${v}`).join('\n'));
      }),
    );
}
