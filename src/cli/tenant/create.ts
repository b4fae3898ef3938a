import { WAIT_HELP } from './wait-help.js';
import { Option, type Command } from 'commander';
import { EXIT, UsageError } from '../../errors.js';
import { resultDocument, exitCodeFor } from '../../fanout/result.js';
import { escapeControl } from '../../report/escape.js';
import { nameProblem } from '../../provision/name.js';
import { renderBulkCreate, renderCreated } from '../../report/tenant.js';
import { canPrompt, type CommandContext } from '../context.js';
import { concurrencyFrom, positiveInt } from '../options.js';
import { action } from '../run.js';
import { operationDeps } from '../operation-deps.js';

interface CreateFlags {
  model?: string;
  tier?: string;
  region?: string;
  shard?: string;
  name?: string;
  key?: string;
  residency?: string;
  fromFile?: string;
  concurrency?: number;
  wait?: boolean;
}

async function create(ctx: CommandContext, slugArg: string | undefined, flags: CreateFlags): Promise<number> {
  const started = Date.now();
  // Checked here, not in commander's parser: its error message would quote the whole value.
  const nameIssue = flags.name !== undefined ? nameProblem(flags.name) : null;
  if (nameIssue) throw new UsageError('BAD_INPUT', `--name ${nameIssue}`, 'give a shorter display name (the slug is the identifier)');
  // As rename refuses it: an empty --name is an unset variable, not a name (leave it out for the slug).
  if (flags.name !== undefined && !flags.name.trim())
    throw new UsageError(
      'BAD_INPUT',
      '--name is empty',
      'give the display name, e.g. --name "Acme Corporation", or leave --name out to use the slug',
    );
  if (flags.fromFile) {
    if (slugArg)
      throw new UsageError('USAGE', 'give either a slug or --from-file, not both', 'tenantctl tenant create --from-file tenants.csv');
    const { createProgress } = await import('../../report/progress.js');
    const { createTenantsFromFile } = await import('../../provision/bulk-create.js');
    let progress: ReturnType<typeof createProgress> | undefined;
    // Ctrl-C: no new tenant starts; the ones being created finish (each is one transaction, or is
    // undone); then the summary says what was done and how to finish. A second Ctrl-C quits.
    const { onInterrupt } = await import('../../operations/interrupt.js');
    const signal = onInterrupt('interrupted: no new tenants start; waiting for the ones being created', (l) => ctx.out.error(l));
    try {
      const results = await createTenantsFromFile(
        async () => ({ ...(await operationDeps(ctx, { wait: flags.wait, migrations: true })), signal }),
        flags.fromFile,
        {
          concurrency: concurrencyFrom(flags.concurrency, ctx.config.defaults.concurrency),
          onRead: (inputs) => (progress = createProgress(ctx.out, 'tenant create', inputs.length)),
          onStart: (i) => progress?.started(i.slug),
          onResult: (_i, r) => progress?.finished(r),
          signal,
        },
      );
      const interrupted = signal.aborted;
      await progress?.close({ interrupted });
      const doc = resultDocument('tenant create', results, started, interrupted ? { interrupted: true } : {});
      if (interrupted) doc.ok = false;
      renderBulkCreate(ctx.out, doc, interrupted, finishCommand(ctx, flags));
      return interrupted ? EXIT.interrupted : exitCodeFor(doc);
    } finally {
      await progress?.close();
    }
  }
  let slug = slugArg;
  if (!slug) {
    if (!canPrompt(ctx))
      throw new UsageError('USAGE', 'missing the tenant slug', 'tenantctl tenant create <slug> [--tier T] (or --from-file FILE)');
    slug = await promptForCreate(ctx, flags);
  }
  const { createTenant } = await import('../../provision/create-tenant.js');
  const { wait, fromFile: _f, concurrency: _c, ...input } = flags;
  const r = await createTenant(await operationDeps(ctx, { wait, migrations: true }), { slug, ...input });
  const doc = resultDocument('tenant create', [r], started);
  renderCreated(ctx.out, doc, r);
  return exitCodeFor(doc);
}

/** The command that finishes a bulk run: the same file again (existing tenants are skipped). */
function finishCommand(ctx: CommandContext, flags: CreateFlags): string {
  const q = (v: string) => (/^[\w@%+=:,./-]+$/.test(v) ? v : `'${v.replace(/'/g, `'\\''`)}'`);
  const parts = ['tenantctl'];
  if (ctx.opts.config) parts.push('--config', q(ctx.opts.config));
  parts.push('tenant', 'create', '--from-file', q(flags.fromFile!));
  if (flags.concurrency !== undefined) parts.push('--concurrency', String(flags.concurrency));
  return escapeControl(parts.join(' '));
}

/** On a TTY, ask for what the flags left out. */
async function promptForCreate(ctx: CommandContext, flags: CreateFlags): Promise<string> {
  const { input, select } = await import('@inquirer/prompts');
  const { slugProblem } = await import('../../placement/slug.js');
  const io = { output: process.stderr };
  const slug = await input({ message: 'Tenant slug', validate: (v) => (slugProblem(v) ? `slug ${slugProblem(v)}` : true) }, io);
  const c = ctx.config;
  if (!flags.tier && !flags.model) {
    flags.tier = await select(
      {
        message: 'Tier',
        choices: Object.entries(c.tiers).map(([t, v]) => ({ name: `${t} (${v.model})`, value: t })),
        default: c.defaultTier,
      },
      io,
    );
  }
  if (!flags.region && !flags.shard) {
    flags.region = await select(
      { message: 'Region', choices: Object.keys(c.regions).map((r) => ({ name: r, value: r })), default: c.defaultRegion },
      io,
    );
  }
  return slug;
}

/** `tenant create`. */
export function registerTenantCreate(tenant: Command): void {
  tenant
    .command('create [slug]')
    .description('provision a tenant (or many with --from-file)')
    .addHelpText(
      'after',
      '\nExamples:\n  tenantctl tenant create acme --tier standard\n  tenantctl tenant create --from-file new-tenants.csv --concurrency 8\n',
    )
    .addOption(new Option('--model <model>', 'pool, schema or database (default: from the tier)'))
    .option('--tier <tier>', 'tier from the config (decides the model)')
    .option('--region <region>', 'region (default: defaults.region)')
    .option('--shard <shard>', 'shard (default: the least-loaded of the region)')
    .option('--name <name>', 'display name, at most 200 characters (default: the slug)')
    .option('--key <key>', 'tenant key value (default: a fresh one)')
    .option('--residency <label>', 'refuse regions without this residency label (e.g. eu)')
    .option('--from-file <file>', 'CSV (header row) or YAML list with slug,name,model,tier,region,shard,key,residency')
    .option('--concurrency <n>', 'tenants created at once with --from-file', positiveInt('--concurrency'))
    .option('--wait', WAIT_HELP)
    .action(action('tenant create', create));
}
