import { InvalidArgumentError, Option, type Command } from 'commander';
import { EXIT } from '../errors.js';
import { addSelectorOptions, concurrencyFrom, positiveInt, selectorFrom } from './options.js';
import { action } from './run.js';

interface UsageFlags {
  metricsFile?: string;
  failOnQuota?: boolean;
  estimate?: number | true;
  top?: number;
  concurrency?: number;
  [selector: string]: unknown;
}

/** --estimate [percent]: 0 < p ≤ 100, default 1. */
function percent(v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0 || n > 100)
    throw new InvalidArgumentError('must be a percentage above 0 and at most 100, e.g. --estimate 1');
  return n;
}

/** `tenantctl usage`: a thin adapter over src/usage/measure.ts. */
export function registerUsageCommand(program: Command): void {
  const cmd = program
    .command('usage')
    .description("per tenant: bytes, rows, connections and statements against its tier's quotas; per-shard totals")
    .addHelpText(
      'after',
      '\nExamples:\n  tenantctl usage --shard us1 --top 5\n  tenantctl usage --fail-on-quota --metrics-file /var/lib/node_exporter/tenantctl.prom\n',
    )
    .option('--metrics-file <file>', 'also write a Prometheus textfile (replaced atomically)')
    .option('--fail-on-quota', 'exit 1 when a tenant is over a quota')
    .addOption(
      new Option('--estimate [percent]', 'sample each table (TABLESAMPLE SYSTEM, default 1%) instead of reading every row').argParser(
        percent,
      ),
    )
    .addOption(new Option('--top <n>', "each shard's heaviest n tenants only").argParser(positiveInt('--top')))
    .addOption(
      new Option('--concurrency <n>', 'units of work at once (default: defaults.concurrency)').argParser(positiveInt('--concurrency')),
    );
  addSelectorOptions(cmd).action(
    action('usage', async (ctx, flags: UsageFlags) => {
      // Its folder checked first, as every --metrics-file is: not an unexpected error after the whole measurement.
      if (flags.metricsFile) await (await import('./metrics-flag.js')).checkMetricsFolder(flags.metricsFile);
      const selector = selectorFrom(flags);
      const estimate = flags.estimate === undefined ? undefined : { percent: flags.estimate === true ? 1 : flags.estimate };
      // The shared tables' passes start first: they need only the config, and the server scans
      // while the catalog connects, the modules compile and the tenant list is read.
      const fleetModule = ctx.fleet(); // its module only: it connects on first use
      const earlyStart = Promise.all([import('../usage/early-passes.js'), fleetModule]).then(([e, fleet]) => ({
        ...e,
        early: e.startEarlyPasses({ config: ctx.config, fleet }, selector, { estimate }),
      }));
      let report: Awaited<ReturnType<typeof import('../usage/measure.js').measureUsage>>;
      let render: typeof import('../report/usage.js');
      try {
        const [{ selectTenants }, { checkSelector }, { measureUsage }, reportModule, db, fleet, { early }] = await Promise.all([
          import('../catalog/tenants.js'),
          import('./selectors.js'),
          import('../usage/measure.js'),
          import('../report/usage.js'),
          ctx.catalog(),
          fleetModule,
          earlyStart,
        ]);
        render = reportModule;
        await checkSelector(ctx.config, db, selector);
        const tenants = await selectTenants(db, selector);
        report = await measureUsage({ config: ctx.config, fleet }, tenants, {
          concurrency: concurrencyFrom(flags.concurrency, ctx.config.defaults.concurrency),
          estimate,
          top: flags.top,
          early,
        });
      } finally {
        // A bad selector, a catalog down: no pass may still hold a connection when the fleet closes.
        await earlyStart.then(
          (e) => e.settleEarlyPasses(e.early),
          () => undefined,
        );
      }
      if (flags.metricsFile) {
        const [{ writeTextfile }, { usageRegistry }] = await Promise.all([import('../metrics/textfile.js'), import('../usage/metrics.js')]);
        await writeTextfile(flags.metricsFile, usageRegistry(report));
      }
      const doc = render.usageDocument(report);
      render.renderUsage(ctx.out, doc, flags.top);
      if (!doc.ok) return EXIT.failed;
      return flags.failOnQuota && doc.overQuota > 0 ? EXIT.failed : EXIT.ok;
    }),
  );
}
