import type { Command } from 'commander';
import { EXIT } from '../../errors.js';
import { addSelectorOptions, concurrencyFrom, positiveInt, selectorFrom } from '../options.js';
import { action } from '../run.js';

/** `migrate status`. */
export function registerMigrateStatus(migrate: Command): void {
  addSelectorOptions(migrate.command('status').description('versions across the fleet, grouped; drift; never-migrated and failed targets'))
    .addHelpText(
      'after',
      '\nExamples:\n  tenantctl migrate status\n  tenantctl migrate status --json --region eu-west\n' +
        'Exit code: 0 every selected target is at head; 1 something is pending, never migrated, failed, drifted, ahead of these files or unreachable.\n',
    )
    .option('--concurrency <n>', 'databases read at once', positiveInt('--concurrency'))
    .action(
      action('migrate status', async (ctx, flags: Record<string, unknown>) => {
        const { loadMigrations } = await import('../../migrate/files.js');
        const migrations = await loadMigrations(ctx.config.migrationsDir);
        const { migrateStatus } = await import('../../migrate/status.js');
        const { renderMigrateStatus } = await import('../../report/migrate.js');
        const { checkSelector } = await import('../selectors.js');
        const selector = selectorFrom(flags);
        await checkSelector(ctx.config, await ctx.catalog(), selector);
        const doc = await migrateStatus(
          { db: await ctx.catalog(), fleet: await ctx.fleet(), migrations },
          { selector, concurrency: concurrencyFrom(flags.concurrency as number | undefined, ctx.config.defaults.concurrency) },
        );
        renderMigrateStatus(ctx.out, doc);
        return doc.ok ? EXIT.ok : EXIT.failed;
      }),
    );
}
