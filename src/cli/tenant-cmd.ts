import { Option, type Command } from 'commander';
import { EXIT, UsageError } from '../errors.js';
import { resultDocument, exitCodeFor } from '../fanout/result.js';
import { escapeControl } from '../report/escape.js';
import { sortNaturallyBy } from '../report/natural-sort.js';
import { nameProblem } from '../provision/name.js';
import {
  publicTenant,
  renderBulkCreate,
  renderCreated,
  renderTenantChanged,
  renderTenantDeleted,
  renderTenantList,
  streamTenantList,
  renderTenantShow,
  renderSuspended,
} from '../report/tenant.js';
import { canPrompt, type CommandContext } from './context.js';
import { addSelectorOptions, concurrencyFrom, positiveInt, selectorFrom } from './options.js';
import { confirmDestructive } from './confirm.js';
import { action } from './run.js';
import { operationDeps } from './operation-deps.js';

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

const WAIT_HELP = 'wait for another command working on the same tenant instead of exit 3';

async function create(ctx: CommandContext, slugArg: string | undefined, flags: CreateFlags): Promise<number> {
  const started = Date.now();
  // Checked here, not in commander's parser: its error message would quote the whole value.
  const nameIssue = flags.name !== undefined ? nameProblem(flags.name) : null;
  if (nameIssue) throw new UsageError('BAD_INPUT', `--name ${nameIssue}`, 'give a shorter display name (the slug is the identifier)');
  if (flags.fromFile) {
    if (slugArg)
      throw new UsageError('USAGE', 'give either a slug or --from-file, not both', 'tenantctl tenant create --from-file tenants.csv');
    const { createProgress } = await import('../report/progress.js');
    const { createTenantsFromFile } = await import('../provision/bulk-create.js');
    let progress: ReturnType<typeof createProgress> | undefined;
    // Ctrl-C: no new tenant starts; the ones being created finish (each is one transaction, or is
    // undone); then the summary says what was done and how to finish. A second Ctrl-C quits.
    const { onInterrupt } = await import('../operations/interrupt.js');
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
  const { createTenant } = await import('../provision/create-tenant.js');
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
  const { slugProblem } = await import('../placement/slug.js');
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

export function registerTenantCommands(program: Command): void {
  const tenant = program.command('tenant').description('provision and manage tenants');

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
    .option('--from-file <file>', 'CSV (header row) or YAML list with slug,name,model,tier,region,shard,key')
    .option('--concurrency <n>', 'tenants created at once with --from-file', positiveInt('--concurrency'))
    .option('--wait', WAIT_HELP)
    .action(action('tenant create', create));

  addSelectorOptions(tenant.command('list').description('tenants in the catalog'))
    .addHelpText('after', '\nExample:\n  tenantctl tenant list --region eu-west --model schema\n')
    .action(
      action('tenant list', async (ctx, opts: Record<string, unknown>) => {
        const { selectTenants, tenantPages } = await import('../catalog/tenants.js');
        const { checkSelector } = await import('./selectors.js');
        const selector = selectorFrom(opts);
        const db = await ctx.catalog();
        await checkSelector(ctx.config, db, selector);
        // The document streams page by page (slug order; natural order when it fits in one page):
        // a catalog of 100,000 is never held.
        if (ctx.out.json) return streamTenantList(ctx.out, tenantPages(db, selector), (p) => sortNaturallyBy(p, (t) => t.slug));
        await renderTenantList(
          ctx.out,
          sortNaturallyBy(await selectTenants(db, selector), (t) => t.slug),
        );
      }),
    );

  tenant
    .command('show <slug>')
    .description('one tenant, its placement and its recent events')
    .addHelpText('after', '\nExample:\n  tenantctl tenant show acme\n')
    .action(
      action('tenant show', async (ctx, slug: string) => {
        const { getTenant } = await import('../catalog/tenants.js');
        const { recentEvents } = await import('../catalog/events.js');
        const db = await ctx.catalog();
        const t = await getTenant(db, slug);
        renderTenantShow(ctx.out, t, await recentEvents(db, slug));
      }),
    );

  for (const verb of ['suspend', 'resume'] as const) {
    tenant
      .command(`${verb} <slug>`)
      .description(
        verb === 'suspend'
          ? "cut a tenant's application off: no reads or writes until resume (it is still migrated)"
          : 'let a suspended tenant back in',
      )
      .addHelpText('after', `\nExample:\n  tenantctl tenant ${verb} acme\n`)
      .option('--wait', WAIT_HELP)
      .action(
        action(`tenant ${verb}`, async (ctx, slug: string, opts: { wait?: boolean }) => {
          const { setSuspended } = await import('../provision/lifecycle.js');
          const r = await setSuspended(await operationDeps(ctx, { wait: opts.wait }), slug, verb === 'suspend');
          renderSuspended(ctx.out, ctx.command, r);
        }),
      );
  }

  tenant
    .command('rename <slug> [new-slug]')
    .description("change a tenant's display name (--name); its slug stays: roles, schemas, backups and keys are named by it")
    .addHelpText('after', '\nExample:\n  tenantctl tenant rename acme --name "Acme Corporation"\n')
    .option('--name <name>', 'the new display name, at most 200 characters')
    .option('--wait', WAIT_HELP)
    .action(
      action('tenant rename', async (ctx, slug: string, newSlug: string | undefined, opts: { name?: string; wait?: boolean }) => {
        const { renameTenant, SLUG_IS_IDENTITY } = await import('../provision/rename.js');
        if (newSlug !== undefined)
          throw new UsageError(
            'USAGE',
            SLUG_IS_IDENTITY,
            `change the display name: tenantctl tenant rename ${slug} --name "…"; or copy the data to a new tenant: tenantctl backup create ${slug}, tenantctl restore <backup> --as ${newSlug}, then tenantctl tenant delete ${slug}`,
          );
        if (opts.name === undefined)
          throw new UsageError('USAGE', 'tenant rename needs --name', `tenantctl tenant rename ${slug} --name "Acme Corporation"`);
        const r = await renameTenant(await operationDeps(ctx, { wait: opts.wait }), slug, opts.name);
        const [to, from] = [r.tenant.name, r.from].map((n) => `"${escapeControl(n)}"`);
        const line = r.changed ? `${slug} is now named ${to} (was ${from})` : `${slug} is already named ${from}; nothing to do`;
        renderTenantChanged(ctx.out, ctx.command, r.tenant, line, { changed: r.changed, from: r.from });
      }),
    );

  tenant
    .command('credentials <slug>')
    .description("set a new password for a schema or database tenant's role and print it once")
    .addHelpText(
      'after',
      '\nExamples:\n  tenantctl tenant credentials acme\n  tenantctl tenant credentials acme --rotate --json > acme-credentials.json\n',
    )
    .option('--rotate', 'replace the password the role has (the old one stops working at once)')
    .option('--wait', WAIT_HELP)
    .action(
      action('tenant credentials', async (ctx, slug: string, opts: { rotate?: boolean; wait?: boolean }) => {
        const { setTenantCredentials } = await import('../provision/credentials.js');
        const { renderCredentials } = await import('../report/credentials.js');
        const c = await setTenantCredentials(await operationDeps(ctx, { wait: opts.wait }), slug, { rotate: opts.rotate });
        renderCredentials(ctx.out, ctx.command, c);
      }),
    );

  tenant
    .command('delete <slug>')
    .description("remove a tenant's placement (or pool rows) and its catalog entry")
    .addHelpText('after', '\nExample:\n  tenantctl tenant delete acme --yes\n')
    .option('--yes', 'confirm without asking')
    .option('--skip-backup', 'delete without the final backup taken by default')
    .option('--wait', WAIT_HELP)
    .action(
      action('tenant delete', async (ctx, slug: string, opts: { yes?: boolean; wait?: boolean; skipBackup?: boolean }) => {
        const { getTenant } = await import('../catalog/tenants.js');
        const db = await ctx.catalog();
        const t = await getTenant(db, slug);
        await confirmDestructive(ctx, opts.yes, `delete tenant ${slug} and all its data (${t.model} on ${t.shard})`);
        const { deleteTenant } = await import('../provision/lifecycle.js');
        const gone = await deleteTenant(await operationDeps(ctx, { wait: opts.wait }), slug, { skipBackup: opts.skipBackup });
        renderTenantDeleted(ctx.out, ctx.command, t, gone.finalBackup);
      }),
    );
}

// Kept importable from here; the renderer lives in src/report/tenant.ts.
export { publicTenant };
