import { Option, type Command } from 'commander';
import { positiveInt } from '../options.js';
import { METRICS_FILE_OPTION, meteredAction, recordOutcomes } from '../metrics-flag.js';

/** `backup prune`. */
export function registerBackupPrune(backup: Command): void {
  backup
    .command('prune')
    .description("delete old backups: keep each tenant's newest N and those younger than D days")
    .addHelpText('after', '\nExample:\n  tenantctl backup prune --keep-last 7 --keep-days 30 --dry-run\n')
    .addOption(new Option('--keep-last <n>', "keep each tenant's newest N").argParser(positiveInt('--keep-last')))
    .addOption(new Option('--keep-days <d>', 'keep backups younger than D days').argParser(positiveInt('--keep-days')))
    .option('--tenant <slug>', "only this tenant's backups")
    .option('--dry-run', 'say what would be deleted; delete nothing')
    .option(...METRICS_FILE_OPTION)
    .action(
      meteredAction('backup prune', async (ctx, flags: { keepLast?: number; keepDays?: number; tenant?: string; dryRun?: boolean }) => {
        const { pruneBackups } = await import('../../backup/prune.js');
        const { renderPrune } = await import('../../report/backup.js');
        const rows = await pruneBackups(
          ctx.config,
          {
            keepLast: flags.keepLast,
            keepDays: flags.keepDays,
            dryRun: flags.dryRun,
            slug: flags.tenant,
          },
          () => ctx.catalog(),
        );
        renderPrune(ctx.out, ctx.command, rows, Boolean(flags.dryRun));
        recordOutcomes(ctx, (await import('../../metrics/outcomes.js')).fromPrune(rows));
      }),
    );
}
