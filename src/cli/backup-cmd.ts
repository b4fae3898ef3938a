import { Option, type Command } from 'commander';
import { resultDocument, exitCodeForRefusals } from '../fanout/result.js';
import { ERROR_CODES, EXIT } from '../errors.js';
import { renderResultDocument, resultLine } from '../report/results.js';
import type { CommandContext } from './context.js';
import { addSelectorOptions, concurrencyFrom, positiveInt, selectorFrom } from './options.js';
import { confirmDestructive } from './confirm.js';
import { action } from './run.js';
import { METRICS_FILE_OPTION, meteredAction, recordOutcomes } from './metrics-flag.js';
import { operationDeps } from './operation-deps.js';

/** `backup create | list | verify | prune | forget-key`: thin adapters over src/backup/. */
export function registerBackupCommands(program: Command): void {
  const backup = program.command('backup').description("per-tenant backups in each region's storage");

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
      const { backupTenants } = await import('../backup/create-many.js');
      const { progressLine } = await import('../report/backup.js');
      const live = progressLine(ctx.out);
      const results = await backupTenants(
        { ...(await operationDeps(ctx, { wait: Boolean(flags.wait) })), onProgress: live },
        { slugs, all: Boolean(flags.all), selector: selectorFrom(flags) },
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
      recordOutcomes(ctx, (await import('../metrics/outcomes.js')).fromResults(doc));
      // Every tenant refused (an undeclared keyless table, say): bad input, exit 2.
      return exitCodeForRefusals(doc, (code) => ERROR_CODES[code as keyof typeof ERROR_CODES]?.exit === EXIT.usage);
    }),
  );

  backup
    .command('list [slug]')
    .description("backups in every region's storage, or one tenant's")
    .addHelpText('after', '\nExample:\n  tenantctl backup list acme\n')
    .action(
      action('backup list', async (ctx, slug: string | undefined) => {
        const { listBackups } = await import('../backup/list.js');
        const { renderBackupList } = await import('../report/backup.js');
        renderBackupList(ctx.out, ctx.command, await listBackups(ctx.config, slug));
      }),
    );

  backup
    .command('verify <backup>')
    .description("check a backup's manifest, checksums and data (no database needed unless encrypted)")
    .addHelpText('after', '\nExample:\n  tenantctl backup verify acme.20261126T225317123Z\n')
    .action(
      action('backup verify', async (ctx, id: string) => {
        const { verifyBackup } = await import('../backup/verify.js');
        const { renderVerify } = await import('../report/backup.js');
        const r = await verifyBackup(ctx.config, id, () => ctx.catalog());
        renderVerify(ctx.out, ctx.command, r);
        return r.ok ? 0 : 2;
      }),
    );

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
        const { pruneBackups } = await import('../backup/prune.js');
        const { renderPrune } = await import('../report/backup.js');
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
        recordOutcomes(ctx, (await import('../metrics/outcomes.js')).fromPrune(rows));
      }),
    );

  backup
    .command('forget-key <slug>')
    .description("destroy a tenant's backup data key: every encrypted archive of it becomes unreadable")
    .addHelpText('after', '\nExample:\n  tenantctl backup forget-key acme --yes\n')
    .option('--yes', 'confirm without asking')
    .action(
      action('backup forget-key', async (ctx, slug: string, flags: { yes?: boolean }) => {
        const { assertSlug } = await import('../placement/slug.js');
        assertSlug(slug);
        await confirmDestructive(
          ctx,
          flags.yes,
          `destroy the backup data key of ${slug} (all its encrypted backups become unreadable for good)`,
        );
        const db = await ctx.catalog();
        const { forgetTenantKeys } = await import('../backup/forget-key.js');
        const { withTenantLock } = await import('../operations/tenant-lock.js');
        const { recordEvent } = await import('../catalog/events.js');
        const r = await withTenantLock(db, slug, { command: ctx.command }, () => forgetTenantKeys(ctx.config, db, slug));
        const n = r.keysDestroyed;
        await recordEvent(db, {
          command: ctx.command,
          action: 'backup key destroyed',
          result: 'ok',
          tenant: slug,
          details: { keys: n, ...r },
        });
        if (ctx.out.json) ctx.out.document({ command: ctx.command, ok: true, tenant: slug, ...r });
        else
          ctx.out.print(
            `${
              n
                ? `destroyed ${n} data key${n === 1 ? '' : 's'} of ${slug}: its encrypted backups can no longer be read`
                : `${slug} had no live backup data key`
            }; erased the key copies of ${r.archiveCopiesErased} archive${r.archiveCopiesErased === 1 ? '' : 's'} and ${r.catalogBackupsScrubbed} catalog backup${r.catalogBackupsScrubbed === 1 ? '' : 's'}`,
          );
      }),
    );
}

/** `restore <backup>`: as a new tenant, elsewhere, or in place. */
export function registerRestoreCommand(program: Command): void {
  program
    .command('restore <backup>')
    .description(
      'restore a backup as a new tenant (--as), elsewhere (--shard, --model), or in place (--replace --yes); with --at, <backup> is a tenant brought back to that time',
    )
    .addHelpText(
      'after',
      "\nExample:\n  tenantctl restore acme.20261126T225317123Z --as acme-copy --model pool\n  tenantctl restore acme.20261126T225317123Z --replace --yes\n  tenantctl restore acme --at '2026-12-05T14:00:00Z' --replace --yes\n",
    )
    .option('--at <time>', 'point-in-time restore of the tenant <backup> names, to this time (pgBackRest; see tenantctl pitr status)')
    .option('--as <slug>', 'restore as a new tenant with this slug (and a new key)')
    .option('--shard <shard>', 'place it on this shard')
    .option('--model <model>', 'pool, schema or database')
    .option('--replace', "swap the live tenant's data for the backup's (a safety backup is taken first)")
    .option('--yes', 'confirm --replace without asking')
    .option('--wait', 'wait for another command working on the tenant instead of exit 3')
    .action(
      action(
        'restore',
        async (
          ctx: CommandContext,
          id: string,
          flags: { as?: string; shard?: string; model?: string; replace?: boolean; yes?: boolean; wait?: boolean; at?: string },
        ) => {
          if (flags.at !== undefined) return (await import('./restore-at-cmd.js')).restoreAtCommand(ctx, id, { ...flags, at: flags.at });
          if (flags.replace) await confirmDestructive(ctx, flags.yes, `replace the data of the tenant in ${id} with the backup's`);
          const { restoreBackup } = await import('../backup/restore-run.js');
          const { renderRestore, progressLine } = await import('../report/backup.js');
          const live = progressLine(ctx.out);
          const r = await restoreBackup(
            { ...(await operationDeps(ctx, { wait: flags.wait, migrations: true })), onProgress: live },
            { backup: id, as: flags.as, shard: flags.shard, model: flags.model, replace: flags.replace },
          );
          if (ctx.out.tty && !ctx.out.quiet) process.stderr.write('\r\x1b[K');
          renderRestore(ctx.out, ctx.command, r);
          return r.status === 'succeeded' ? 0 : 1;
        },
      ),
    );
}
