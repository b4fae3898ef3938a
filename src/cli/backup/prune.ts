import { Option, type Command } from 'commander';
import { UsageError } from '../../errors.js';
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
        // A cron line's typo must not read as "nothing to prune": a bad slug is exit 2 before anything is read.
        if (flags.tenant !== undefined) (await import('../../placement/slug.js')).assertSlug(flags.tenant);
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
        // No archive of that slug and no such tenant: a typo, not a tenant with nothing to prune
        // (a deleted tenant's final backups are found by its slug, so those still prune).
        if (flags.tenant !== undefined && rows.length === 0) {
          const { findTenant } = await import('../../catalog/tenants.js');
          if (!(await findTenant(await ctx.catalog(), flags.tenant)))
            throw new UsageError(
              'TENANT_NOT_FOUND',
              `no tenant "${flags.tenant}" and no backups of it`,
              'see tenantctl tenant list and tenantctl backup list',
            );
        }
        renderPrune(ctx.out, ctx.command, rows, Boolean(flags.dryRun));
        recordOutcomes(ctx, (await import('../../metrics/outcomes.js')).fromPrune(rows));
      }),
    );
}
