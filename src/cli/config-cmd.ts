import type { Command } from 'commander';
import { action } from './run.js';

export function registerConfigCommands(program: Command): void {
  const config = program.command('config').description('the fleet config');
  config
    .command('show')
    .description('print the resolved config, passwords redacted')
    .addHelpText('before', 'Example:\n  tenantctl config show --json\n')
    .action(
      action('config show', async (ctx) => {
        const { stringify } = await import('yaml');
        const { redactDeep, redactUrl } = await import('../config/redact.js');
        const c = ctx.config;
        const shown = {
          file: c.file,
          catalog: { ...c.catalog, url: redactUrl(c.catalogUrl) },
          defaults: c.defaults,
          tiers: c.tiers,
          tenantKey: c.tenantKey,
          rls: c.rls,
          servingRole: { name: c.servingRole.name, password: c.servingRole.password ? '***' : undefined },
          migrations: c.migrations,
          dev: c.dev,
          regions: Object.fromEntries(
            Object.entries(c.regions).map(([name, r]) => [
              name,
              { ...r, shards: Object.fromEntries(Object.entries(r.shards).map(([s, v]) => [s, { ...v, url: redactUrl(v.url) }])) },
            ]),
          ),
        };
        if (ctx.out.json) ctx.out.document(redactDeep(shown));
        else ctx.out.print(stringify(redactDeep(shown)).trimEnd());
      }),
    );
}
