import type { Command } from 'commander';
import { Option } from 'commander';
import { EXIT } from '../errors.js';
import { exitCodeForRefusals, resultDocument } from '../fanout/result.js';
import { confirmDestructive } from './confirm.js';
import { addSelectorOptions, concurrencyFrom, positiveInt, selectorFrom } from './options.js';
import { action } from './run.js';

/** `tenant set-tier` and `tenant limits apply` (issue 19): thin adapters over src/limits/. */
export function registerTierCommands(program: Command): void {
  const tenant = program.commands.find((c) => c.name() === 'tenant')!;
  tenant
    .command('set-tier <slug> <tier>')
    .description("change a tenant's tier: its limits at once; a move when the tier's model differs (planned, or run with --move)")
    .addHelpText(
      'after',
      '\nExamples:\n  tenantctl tenant set-tier acme standard\n  tenantctl tenant set-tier acme enterprise --move --yes\n',
    )
    .option('--move', "also move the tenant to the tier's model (offline: its writes are blocked while it is copied)")
    .option('--yes', 'confirm --move without asking')
    .option('--wait', 'wait for another command working on the tenant instead of exit 3')
    .action(
      action('tenant set-tier', async (ctx, slug: string, tier: string, opts: { move?: boolean; yes?: boolean; wait?: boolean }) => {
        const { setTier } = await import('../limits/set-tier.js');
        const { loadMigrations } = await import('../migrate/files.js');
        const { renderSetTier } = await import('../report/limits.js');
        if (opts.move)
          await confirmDestructive(ctx, opts.yes, `set-tier ${slug} ${tier} --move (its writes are blocked while it is copied)`);
        const deps = {
          config: ctx.config,
          db: await ctx.catalog(),
          fleet: await ctx.fleet(),
          migrations: await loadMigrations(ctx.config.migrationsDir),
          command: ctx.command,
          wait: opts.wait,
        };
        const r = await setTier(deps, slug, tier, { move: opts.move });
        renderSetTier(ctx.out, ctx.command, r);
        return r.move?.status === 'failed' ? EXIT.failed : EXIT.ok;
      }),
    );

  const limits = tenant.command('limits').description("tier limits on tenants' roles and databases");
  addSelectorOptions(
    limits
      .command('apply')
      .description("bring the selected tenants' roles and databases to their tier's limits (after the config changed)")
      .addHelpText('after', '\nExamples:\n  tenantctl tenant limits apply --dry-run\n  tenantctl tenant limits apply --tier free\n')
      .option('--dry-run', 'show what differs and change nothing')
      .addOption(
        new Option('--concurrency <n>', 'tenants at once (default: defaults.concurrency)').argParser(positiveInt('--concurrency')),
      ),
  ).action(
    action('tenant limits apply', async (ctx, flags: { dryRun?: boolean; concurrency?: number; [k: string]: unknown }) => {
      const { selectTenants } = await import('../catalog/tenants.js');
      const { checkSelector } = await import('./selectors.js');
      const { applyTierLimits } = await import('../limits/apply.js');
      const { renderLimitsApply } = await import('../report/limits.js');
      const { resultLine } = await import('../report/results.js');
      const started = Date.now();
      const db = await ctx.catalog();
      const selector = selectorFrom(flags);
      await checkSelector(ctx.config, db, selector);
      const tenants = await selectTenants(db, selector);
      const results = await applyTierLimits({ config: ctx.config, fleet: await ctx.fleet() }, tenants, {
        dryRun: flags.dryRun,
        concurrency: concurrencyFrom(flags.concurrency, ctx.config.defaults.concurrency),
        onResult: (_t, r) => ctx.out.info(resultLine(ctx.out, r)),
      });
      const doc = resultDocument(ctx.command, results, started, { dryRun: Boolean(flags.dryRun) });
      renderLimitsApply(ctx.out, doc, Boolean(flags.dryRun));
      const { ERROR_CODES } = await import('../errors.js');
      return exitCodeForRefusals(doc, (code) => ERROR_CODES[code as keyof typeof ERROR_CODES]?.exit === EXIT.usage);
    }),
  );
}
