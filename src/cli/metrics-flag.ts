import { access, constants, stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { EXIT, TenantctlError, UsageError, errorMessage } from '../errors.js';
import type { Outcomes } from '../metrics/outcomes.js';
import type { CommandContext } from './context.js';
import { action } from './run.js';

/** `--metrics-file F` on the commands cron runs (migrate up, backup create, backup prune, audit): `.option(...METRICS_FILE_OPTION)`. */
export const METRICS_FILE_OPTION = [
  '--metrics-file <file>',
  "write the run's Prometheus metrics to this file (node_exporter textfile collector: written aside, then renamed)",
] as const;

/** `action(name, fn)` for a command taking --metrics-file: see `metered`. */
export function meteredAction<A extends unknown[]>(name: string, fn: (ctx: CommandContext, ...args: A) => Promise<number | void>) {
  return action(name, metered(fn));
}

/** What each running command recorded for its metrics (one context per command run). */
const recorded = new WeakMap<CommandContext, Outcomes>();

/**
 * A command body hands its items' and tenants' outcomes to its metrics. Without --metrics-file it
 * is kept and dropped with the context; cheap either way.
 */
export function recordOutcomes(ctx: CommandContext, o: Outcomes): void {
  recorded.set(ctx, o);
}

/**
 * Wrap a command body (inside `action()`) so that, when its options carry `metricsFile`, its
 * metrics are written afterwards, whatever the end: exit 0, a failed tenant, or a thrown error
 * (counted as outcome `error`, with its code). The folder is checked first, so a wrong path is
 * exit 2 before anything runs.
 *
 * @example
 *   .action(action('backup prune', metered(async (ctx, flags) => { …; recordOutcomes(ctx, fromPrune(rows)); })))
 */
export function metered<A extends unknown[]>(
  body: (ctx: CommandContext, ...args: A) => Promise<number | void>,
): (ctx: CommandContext, ...args: A) => Promise<number> {
  return async (ctx, ...args) => {
    // Commander passes the options after the positional arguments (action() drops the Command).
    const file = (args.at(-1) as { metricsFile?: string } | undefined)?.metricsFile;
    if (file === undefined) return (await body(ctx, ...args)) ?? EXIT.ok;
    const path = resolve(file);
    await checkMetricsFolder(path);
    const startedAt = Date.now();
    let code: number;
    let error: string | undefined;
    let thrown: unknown;
    try {
      code = (await body(ctx, ...args)) ?? EXIT.ok;
    } catch (err) {
      thrown = err;
      error = err instanceof TenantctlError ? err.code : 'INTERNAL';
      code = err instanceof TenantctlError ? err.exitCode : EXIT.failed;
    }
    const o = recorded.get(ctx) ?? { outcomes: {}, tenants: [] };
    const outcomes = error ? { ...o.outcomes, error: 1 } : o.outcomes;
    try {
      await writeRunMetrics(path, {
        command: ctx.command,
        startedAt,
        endedAt: Date.now(),
        exitCode: code,
        error,
        outcomes,
        tenants: o.tenants,
      });
    } catch (err) {
      // The run itself is done; a monitoring file that could not be written must not pass for success.
      ctx.out.error(`error: could not write the metrics file ${path}: ${errorMessage(err)}`);
      if (thrown === undefined && code === EXIT.ok) code = EXIT.failed;
    }
    if (thrown !== undefined) throw thrown;
    return code;
  };
}

async function writeRunMetrics(path: string, run: import('../metrics/run-metrics.js').RunOutcome): Promise<void> {
  const [{ runRegistry }, { previousLastSuccess }, { writeTextfile }] = await Promise.all([
    import('../metrics/run-metrics.js'),
    import('../metrics/previous.js'),
    import('../metrics/textfile.js'),
  ]);
  // A failed run keeps the last success the file already held, so staleness alerts keep counting.
  const previous = run.exitCode === EXIT.ok ? undefined : await previousLastSuccess(path, run.command);
  await writeTextfile(path, runRegistry(run, previous));
}

/** A --metrics-file whose folder is missing or not writable is exit 2 before the command does anything. */
export async function checkMetricsFolder(path: string): Promise<void> {
  const dir = dirname(path);
  const isDir = await stat(dir).then(
    (s) => s.isDirectory(),
    () => false,
  );
  const writable =
    isDir &&
    (await access(dir, constants.W_OK).then(
      () => true,
      () => false,
    ));
  if (!writable)
    throw new UsageError(
      'BAD_INPUT',
      `--metrics-file ${path}: the folder ${dir} ${isDir ? 'is not writable' : 'does not exist'}`,
      "point --metrics-file into an existing folder you can write (node_exporter's --collector.textfile.directory)",
    );
  // The file is replaced by a rename at the end: a folder of that name would fail it after the work.
  if (
    await stat(path).then(
      (s) => s.isDirectory(),
      () => false,
    )
  )
    throw new UsageError(
      'BAD_INPUT',
      `--metrics-file ${path} is a folder, not a file`,
      `name a file in it, e.g. --metrics-file ${path.replace(/\/+$/, '')}/tenantctl.prom`,
    );
}
