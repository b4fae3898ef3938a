import type { Command } from 'commander';
import { EXIT, UsageError } from '../../errors.js';
import { addSelectorOptions, concurrencyFrom, positiveInt, selectorFrom } from '../options.js';
import { action } from '../run.js';

/** `migrate repair`. */
export function registerMigrateRepair(migrate: Command): void {
  addSelectorOptions(
    migrate
      .command('repair <migration>')
      .description('make targets that ran an edited migration file match it: re-apply it, or re-baseline its checksum'),
  )
    .addHelpText(
      'after',
      '\nExamples:\n  tenantctl migrate repair 0002_projects_and_tasks --tenant acme,globex --reapply --yes\n' +
        '  tenantctl migrate repair 0002 --region eu-west --rebaseline --dry-run\n' +
        'Only targets where the file was applied with another checksum (drift) are touched; the others are skipped.\n',
    )
    .option('--reapply', 'run the file as it is now on each drifted target, in one transaction, and record its checksum')
    .option('--rebaseline', "record the file's checksum without running it (the edit changes nothing there)")
    .option('--dry-run', 'list the targets that would be repaired; change nothing')
    .option('--yes', 'confirm without asking')
    .option('--wait', 'wait for a running migrate up instead of exit 3')
    .option('--concurrency <n>', 'databases read at once', positiveInt('--concurrency'))
    .action(
      action('migrate repair', async (ctx, migration: string, flags: Record<string, unknown>) => {
        if (Boolean(flags.reapply) === Boolean(flags.rebaseline)) {
          throw new UsageError(
            'USAGE',
            'give exactly one of --reapply (run the edited file again) or --rebaseline (record its checksum only)',
            `tenantctl migrate repair ${migration} --tenant SLUG --reapply`,
          );
        }
        const selector = selectorFrom(flags);
        if (!Object.values(selector).some((v) => v !== undefined)) {
          throw new UsageError(
            'USAGE',
            'say which targets to repair: --tenant SLUGS or other selectors (--shard, --region, --model, …)',
            'migrate status names the drifted targets',
          );
        }
        const { loadMigrations } = await import('../../migrate/files.js');
        const migrations = await loadMigrations(ctx.config.migrationsDir);
        const { migrateRepair } = await import('../../migrate/repair.js');
        const { renderMigrateRepair } = await import('../../report/migrate.js');
        const { checkSelector } = await import('../selectors.js');
        const db = await ctx.catalog();
        await checkSelector(ctx.config, db, selector);
        const mode = flags.reapply ? 'reapply' : 'rebaseline';
        if (!flags.dryRun) {
          const { confirmDestructive } = await import('../confirm.js');
          await confirmDestructive(
            ctx,
            flags.yes as boolean | undefined,
            `${mode === 'reapply' ? 're-apply' : 're-baseline'} ${migration} on the drifted targets`,
          );
        }
        const doc = await migrateRepair(
          { config: ctx.config, db, fleet: await ctx.fleet(), migrations, command: ctx.command },
          {
            migration,
            mode,
            selector,
            concurrency: concurrencyFrom(flags.concurrency as number | undefined, ctx.config.defaults.concurrency),
            dryRun: Boolean(flags.dryRun),
            wait: Boolean(flags.wait),
          },
        );
        renderMigrateRepair(ctx.out, doc);
        return doc.ok ? EXIT.ok : EXIT.failed;
      }),
    );
}
