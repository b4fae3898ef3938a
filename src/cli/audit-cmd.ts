import { Option, type Command } from 'commander';
import { EXIT } from '../errors.js';
import type { CommandContext } from './context.js';
import { confirmDestructive } from './confirm.js';
import { addSelectorOptions, concurrencyFrom, positiveInt, selectorFrom } from './options.js';
import { METRICS_FILE_OPTION, meteredAction, recordOutcomes } from './metrics-flag.js';

interface AuditFlags {
  failOn: 'critical' | 'high' | 'medium' | 'low';
  concurrency?: number;
  probes: boolean;
  fix?: boolean;
  yes?: boolean;
  metricsFile?: string;
  [selector: string]: unknown;
}

async function audit(ctx: CommandContext, flags: AuditFlags): Promise<number> {
  const [{ auditAndFix }, { auditDocument, renderAudit }] = await Promise.all([
    import('../audit/audit-and-fix.js'),
    import('../report/audit.js'),
  ]);
  const deps = { config: ctx.config, db: await ctx.catalog(), fleet: await ctx.fleet() };
  const selector = selectorFrom(flags);
  // A selector that names nothing is exit 2 (a typo must not read as a clean audit of no tenants).
  await (await import('./selectors.js')).checkSelector(ctx.config, deps.db, selector);
  const opts = {
    selector,
    concurrency: concurrencyFrom(flags.concurrency, ctx.config.defaults.concurrency),
    probes: flags.probes,
  };
  const fix = flags.fix
    ? {
        confirm: (what: string) => confirmDestructive(ctx, flags.yes, what),
        onApplied: (n: number) => ctx.out.info(`applied ${n} fix(es); auditing again`),
      }
    : undefined;
  const { report, ...extra } = await auditAndFix(deps, opts, fix);
  const doc = auditDocument(report, flags.failOn, extra);
  renderAudit(ctx.out, doc);
  if (flags.metricsFile !== undefined) {
    // Every audited tenant gets an outcome, `clean` ones too, so a dashboard lists them all.
    const [{ selectTenants }, { fromAudit }] = await Promise.all([import('../catalog/tenants.js'), import('../metrics/outcomes.js')]);
    recordOutcomes(
      ctx,
      fromAudit(
        doc,
        (await selectTenants(deps.db, opts.selector)).map((t) => t.slug),
      ),
    );
  }
  return doc.ok ? EXIT.ok : EXIT.failed;
}

export function registerAuditCommand(program: Command): void {
  const cmd = program
    .command('audit')
    .description('Check tenant isolation across the fleet: catalog checks and live cross-tenant probes (read-only)')
    .addHelpText('after', '\nExample:\n  tenantctl audit --fail-on high --json\n')
    .addOption(
      new Option('--fail-on <severity>', 'exit 1 when a finding is at or above this severity')
        .choices(['critical', 'high', 'medium', 'low'])
        .default('high'),
    )
    .addOption(
      new Option('--concurrency <n>', 'units of work at once (default: defaults.concurrency)').argParser(positiveInt('--concurrency')),
    )
    .option('--no-probes', 'catalog checks only, no live probes as the serving and tenant roles')
    .option('--fix', 'apply the fixes tenantctl manages (policies, forcing, grants, CONNECT), then audit again')
    .option('--yes', 'confirm --fix without a prompt (required off a terminal)')
    .option(...METRICS_FILE_OPTION);
  addSelectorOptions(cmd).action(meteredAction('audit', audit));
}
