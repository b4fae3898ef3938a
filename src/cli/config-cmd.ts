import type { Command } from 'commander';
import { action } from './run.js';

export function registerConfigCommands(program: Command): void {
  const config = program.command('config').description('the fleet config');
  config
    .command('show')
    .description('print the resolved config, passwords redacted')
    .addHelpText('after', '\nExample:\n  tenantctl config show --json\n')
    .action(
      action('config show', async (ctx) => {
        const { shownConfig, configAsYaml } = await import('../config/show.js');
        if (ctx.out.json) ctx.out.document({ command: 'config show', ok: true, config: shownConfig(ctx.config) });
        else ctx.out.print(configAsYaml(ctx.config));
      }),
    );
}
