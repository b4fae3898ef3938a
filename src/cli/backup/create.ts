import { Option, type Command } from 'commander';
import { resultDocument, exitCodeForRefusals } from '../../fanout/result.js';
import { ERROR_CODES, EXIT } from '../../errors.js';
import { renderResultDocument, resultLine } from '../../report/results.js';
import { addSelectorOptions, concurrencyFrom, positiveInt, selectorFrom } from '../options.js';
import { METRICS_FILE_OPTION, meteredAction, recordOutcomes } from '../metrics-flag.js';
import { operationDeps } from '../operation-deps.js';

/** `backup create`. */
export function registerBackupCreate(backup: Command): void {
  addSelectorOptions(
    backup
      .command('create [slugs...]')
      .description("back up tenants (one consistent snapshot each) to their region's storage")
      .addHelpText(
        'after',
        '\nExample:\n  tenantctl backup create acme globex\n  tenantctl backup create --all --region eu-west --concurrency 4\n',
      )
      .option('--all', 'every tenant the selectors match')
      .addOption(new Option('--concurrency <n>', 'tenants at once').argParser(positiveInt('--concurrency')))
      .option('--wait', 'wait for another command working on a tenant instead of exit 3')
      .option(...METRICS_FILE_OPTION),
  ).action(
    meteredAction('backup create', async (ctx, slugs: string[], flags: Record<string, unknown>) => {
      const started = Date.now();
      const { backupTenants } = await import('../../backup/create-many.js');
      const { progressLine } = await import('../../report/backup.js');
      const { checkSelector } = await import('../selectors.js');
      const live = progressLine(ctx.out);
      const deps = await operationDeps(ctx, { wait: Boolean(flags.wait) });
      const selector = selectorFrom(flags);
      // A selector that names nothing (`--tier nope` in a cron line) is exit 2, not a night of no backups.
      await checkSelector(ctx.config, deps.db, selector);
      const results = await backupTenants(
        { ...deps, onProgress: live },
        { slugs, all: Boolean(flags.all), selector },
        {
          concurrency: concurrencyFrom(flags.concurrency as number | undefined, ctx.config.defaults.concurrency),
          // One line per tenant as it ends (stderr), for long --all runs.
          onResult: (r) => ctx.out.json || ctx.out.info(`${ctx.out.tty ? '\r\x1b[K' : ''}${resultLine(ctx.out, r)}`),
        },
      );
      const doc = resultDocument('backup create', results, started);
      if (!ctx.out.json)
        for (const r of results)
          if (r.status === 'succeeded')
            ctx.out.print(
              `${r.tenant}: ${r.backup} (${r.rows} rows${r.encrypted ? ', encrypted' : ''}${r.sharedNotCopied?.length ? `; shared, not copied: ${r.sharedNotCopied.join(', ')}` : ''})`,
            );
      renderResultDocument(ctx.out, doc);
      recordOutcomes(ctx, (await import('../../metrics/outcomes.js')).fromResults(doc));
      // Every tenant refused (an undeclared keyless table, say): bad input, exit 2.
      return exitCodeForRefusals(doc, (code) => ERROR_CODES[code as keyof typeof ERROR_CODES]?.exit === EXIT.usage);
    }),
  );
}
