import { Option, type Command } from 'commander';
import { EXIT, UsageError } from '../../errors.js';
import { exitCodeForRefusals } from '../../fanout/result.js';
import type { CommandContext } from '../context.js';
import { addSelectorOptions, concurrencyFrom, positiveInt, selectorFrom } from '../options.js';
import { METRICS_FILE_OPTION, meteredAction, recordOutcomes } from '../metrics-flag.js';

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
  const [{ parsePartition }, { checkPartitionKey, partitionKeyFromEnv }] = await Promise.all([
    import('../../migrate/plan.js'),
    import('../../migrate/partition-agree.js'),
  ]);
  const partition = flags.partition !== undefined ? parsePartition(flags.partition) : undefined;
  if (flags.partitionKey !== undefined && !partition) {
    throw new UsageError(
      'USAGE',
      '--partition-key names the CI matrix a --partition I/N job belongs to; without --partition it would be ignored',
      'add --partition I/N (this job is slice I of N), or drop --partition-key',
    );
  }
  const envKey = partition && flags.partitionKey === undefined ? partitionKeyFromEnv(process.env) : undefined;
  const partitionKey =
    flags.partitionKey !== undefined
      ? checkPartitionKey(flags.partitionKey, '--partition-key')
      : envKey !== undefined
        ? checkPartitionKey(envKey, 'the partition key from the environment (TENANTCTL_PARTITION_KEY or the CI pipeline id)')
        : undefined;
  // Bad files are exit 2 before anything is touched.
  const { loadMigrations } = await import('../../migrate/files.js');
  const migrations = await loadMigrations(ctx.config.migrationsDir);
  const [{ migrateUp }, { createProgress }, { renderMigrateUp }, { localShardTargets }] = await Promise.all([
    import('../../migrate/up.js'),
    import('../../report/progress.js'),
    import('../../report/migrate.js'),
    import('../../migrate/local-shard.js'),
  ]);
  const deps = { config: ctx.config, db: await ctx.catalog(), fleet: await ctx.fleet(), migrations, command: 'migrate up' };
  const { checkSelector } = await import('../selectors.js');
  await checkSelector(ctx.config, deps.db, selector);

  // Ctrl-C (or a CI job's SIGTERM): stop scheduling, let running targets finish, record the run.
  const { onInterrupt } = await import('../../operations/interrupt.js');
  const signal = onInterrupt('interrupted: no new targets start; waiting for running ones to finish', (l) => ctx.out.error(l));
  let progress: ReturnType<typeof createProgress> | undefined;
  try {
    const { doc } = await migrateUp(deps, {
      selector,
      partition,
      partitionKey,
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
    recordOutcomes(ctx, (await import('../../metrics/outcomes.js')).fromResults(doc));
    if (doc.interrupted) return EXIT.interrupted;
    // The fan-outs' one rule: every failure a lock conflict (a tenant or target busy with another
    // command) is exit 3, so a CI step sees "busy, run again"; migrate has no refusal rows (exit 2 is thrown).
    return exitCodeForRefusals(doc, () => false);
  } finally {
    await progress?.close();
  }
}

/** `migrate up`. */
export function registerMigrateUp(migrate: Command): void {
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
        'and without this flag a shard on this machine (localhost, 127.x, ::1, a Unix socket) runs at most 2 targets per core, ' +
        'or one connection per core when it sends many targets per message)',
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
}
