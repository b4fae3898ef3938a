import { Option, type Command } from 'commander';
import { EXIT, UsageError } from '../errors.js';
import type { CommandContext } from './context.js';
import { addSelectorOptions, concurrencyFrom, positiveInt, selectorFrom } from './options.js';
import { action } from './run.js';
import { METRICS_FILE_OPTION, meteredAction, recordOutcomes } from './metrics-flag.js';

interface UpFlags {
  concurrency?: number;
  onError?: 'stop' | 'continue';
  maxFailures?: number;
  canary?: number;
  dryRun?: boolean;
  resume?: number;
  onlyFailed?: number;
  partition?: string;
  partitionKey?: string;
  wait?: boolean;
  [selector: string]: unknown;
}

async function up(ctx: CommandContext, flags: UpFlags): Promise<number> {
  const selector = selectorFrom(flags);
  const fromRun = flags.resume ?? flags.onlyFailed;
  if (flags.resume !== undefined && flags.onlyFailed !== undefined) {
    throw new UsageError('USAGE', 'give either --resume RUN or --only-failed RUN, not both', 'tenantctl migrate up --resume 42');
  }
  if (fromRun !== undefined && (Object.values(selector).some((v) => v !== undefined) || flags.partition)) {
    throw new UsageError(
      'USAGE',
      `--${flags.resume !== undefined ? 'resume' : 'only-failed'} takes the targets of run ${fromRun}; selectors and --partition do not apply`,
      `tenantctl migrate up --${flags.resume !== undefined ? 'resume' : 'only-failed'} ${fromRun}`,
    );
  }
  const [{ parsePartition }, { partitionKeyFromEnv }] = await Promise.all([
    import('../migrate/plan.js'),
    import('../migrate/partition-agree.js'),
  ]);
  const partition = flags.partition !== undefined ? parsePartition(flags.partition) : undefined;
  // Bad files are exit 2 before anything is touched.
  const { loadMigrations } = await import('../migrate/files.js');
  const migrations = await loadMigrations(ctx.config.migrationsDir);
  const [{ migrateUp }, { createProgress }, { renderMigrateUp }, { localShardTargets }] = await Promise.all([
    import('../migrate/up.js'),
    import('../report/progress.js'),
    import('../report/migrate.js'),
    import('../migrate/local-shard.js'),
  ]);
  const deps = { config: ctx.config, db: await ctx.catalog(), fleet: await ctx.fleet(), migrations, command: 'migrate up' };
  const { checkSelector } = await import('./selectors.js');
  await checkSelector(ctx.config, deps.db, selector);

  // Ctrl-C (or a CI job's SIGTERM): stop scheduling, let running targets finish, record the run.
  const { onInterrupt } = await import('../operations/interrupt.js');
  const signal = onInterrupt('interrupted: no new targets start; waiting for running ones to finish', (l) => ctx.out.error(l));
  let progress: ReturnType<typeof createProgress> | undefined;
  try {
    const { doc } = await migrateUp(deps, {
      selector,
      partition,
      partitionKey: partition ? (flags.partitionKey ?? partitionKeyFromEnv(process.env)) : undefined,
      concurrency: concurrencyFrom(flags.concurrency, ctx.config.defaults.concurrency),
      // Without a width of the user's, a shard on this machine runs 2 targets per core.
      localShardTargets: flags.concurrency === undefined && !process.env.TENANTCTL_CONCURRENCY ? localShardTargets() : undefined,
      onError: flags.onError,
      maxFailures: flags.maxFailures,
      canary: flags.canary,
      dryRun: flags.dryRun,
      resume: flags.resume,
      onlyFailed: flags.onlyFailed,
      wait: flags.wait,
      signal,
      hooks: {
        onWaiting: (holder) => ctx.out.info(`waiting for the run lock: ${holder}`),
        onRun: (r) => {
          ctx.out.info(
            `run ${r.runId}${r.resumed ? ' (resumed)' : ''}: ${r.work} of ${r.targets} targets to check or migrate, ${r.upToDate} up to date` +
              `${r.skipped ? `, ${r.skipped} tenants skipped` : ''}; if it stops: tenantctl migrate up --resume ${r.runId}`,
          );
          progress = createProgress(ctx.out, 'migrate up', r.work);
        },
        onTargetStart: (t) => progress?.started(t.id),
        onTargetResult: (_t, r) => progress?.finished(r),
      },
    });
    await progress?.close({ interrupted: doc.interrupted });
    renderMigrateUp(ctx.out, doc);
    recordOutcomes(ctx, (await import('../metrics/outcomes.js')).fromResults(doc));
    if (doc.interrupted) return EXIT.interrupted;
    return doc.ok ? EXIT.ok : EXIT.failed;
  } finally {
    await progress?.close();
  }
}

/** The migrate command group: up, status, repair, create. */
export function registerMigrateCommands(program: Command): void {
  const migrate = program.command('migrate').description('apply migrations/ to every pool, schema and database target');

  addSelectorOptions(
    migrate.command('up').description('migrate the selected targets: pool targets first, then schema and database targets'),
  )
    .addHelpText(
      'after',
      '\nExamples:\n  tenantctl migrate up\n  tenantctl migrate up --json --on-error continue --max-failures 10\n' +
        '  tenantctl migrate up --canary 3 --region eu-west\n  tenantctl migrate up --partition 2/4     # job 2 of a 4-job CI matrix\n' +
        '  tenantctl migrate up --resume 42          # finish run 42 after a crash or Ctrl-C\n',
    )
    .option(
      '--concurrency <n>',
      'targets migrated at once across the fleet (default: defaults.concurrency; each shard also keeps to its maxConnections, ' +
        'and without this flag a shard on this machine (localhost, 127.x, ::1, a Unix socket) runs at most 2 targets per core)',
      positiveInt('--concurrency'),
    )
    .addOption(
      new Option('--on-error <policy>', 'stop: no new targets after a failure (default); continue: run every target').choices([
        'stop',
        'continue',
      ]),
    )
    .option('--max-failures <n>', 'stop scheduling after this many failed targets', positiveInt('--max-failures'))
    .option('--canary <n>', 'migrate n targets first, one at a time; stop if any fails', positiveInt('--canary'))
    .option('--dry-run', 'print the pending migrations per target; change nothing')
    .option('--resume <run>', 'finish run <run>: its targets not yet succeeded', positiveInt('--resume'))
    .option('--only-failed <run>', "retry run <run>'s failed targets", positiveInt('--only-failed'))
    .option('--partition <i/n>', 'only slice i of n of the targets, dealt out by expected cost (for CI matrices)')
    .option(
      '--partition-key <key>',
      "the CI matrix's id: the first job records the split, the others read it (default: TENANTCTL_PARTITION_KEY or the pipeline id)",
    )
    .option('--wait', 'wait for another running migrate up instead of exit 3')
    .option(...METRICS_FILE_OPTION)
    .action(meteredAction('migrate up', up));

  addSelectorOptions(migrate.command('status').description('versions across the fleet, grouped; drift; never-migrated and failed targets'))
    .addHelpText(
      'after',
      '\nExamples:\n  tenantctl migrate status\n  tenantctl migrate status --json --region eu-west\n' +
        'Exit code: 0 every selected target is at head; 1 something is pending, never migrated, failed, drifted, ahead of these files or unreachable.\n',
    )
    .option('--concurrency <n>', 'databases read at once', positiveInt('--concurrency'))
    .action(
      action('migrate status', async (ctx, flags: Record<string, unknown>) => {
        const { loadMigrations } = await import('../migrate/files.js');
        const migrations = await loadMigrations(ctx.config.migrationsDir);
        const { migrateStatus } = await import('../migrate/status.js');
        const { renderMigrateStatus } = await import('../report/migrate.js');
        const { checkSelector } = await import('./selectors.js');
        const selector = selectorFrom(flags);
        await checkSelector(ctx.config, await ctx.catalog(), selector);
        const doc = await migrateStatus(
          { db: await ctx.catalog(), fleet: await ctx.fleet(), migrations },
          { selector, concurrency: concurrencyFrom(flags.concurrency as number | undefined, ctx.config.defaults.concurrency) },
        );
        renderMigrateStatus(ctx.out, doc);
        return doc.ok ? EXIT.ok : EXIT.failed;
      }),
    );

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
        const { loadMigrations } = await import('../migrate/files.js');
        const migrations = await loadMigrations(ctx.config.migrationsDir);
        const { migrateRepair } = await import('../migrate/repair.js');
        const { renderMigrateRepair } = await import('../report/migrate.js');
        const { checkSelector } = await import('./selectors.js');
        const db = await ctx.catalog();
        await checkSelector(ctx.config, db, selector);
        const mode = flags.reapply ? 'reapply' : 'rebaseline';
        if (!flags.dryRun) {
          const { confirmDestructive } = await import('./confirm.js');
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

  migrate
    .command('create <name>')
    .description('write the next-numbered migration file in migrations.dir')
    .addHelpText(
      'after',
      '\nExamples:\n  tenantctl migrate create add_archived_at\n  tenantctl migrate create tasks_due_index --no-transaction\n',
    )
    .option('--ts', 'a Kysely TypeScript module instead of SQL')
    .option('--no-transaction', 'run outside a transaction (CREATE INDEX CONCURRENTLY)')
    .action(
      action('migrate create', async (ctx, name: string, flags: { ts?: boolean; transaction?: boolean }) => {
        const { createMigrationFile } = await import('../migrate/create.js');
        const file = await createMigrationFile(ctx.config.migrationsDir, name, {
          ts: flags.ts,
          noTransaction: flags.transaction === false,
        });
        if (ctx.out.json) ctx.out.document({ command: 'migrate create', ok: true, file });
        else ctx.out.print(`created ${file}`);
      }),
    );
}
