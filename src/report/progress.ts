import type { TenantResult } from '../fanout/result.js';
import type { Output } from './output.js';
import { escapeControl } from './escape.js';
import { errorText, isNotRun as notRun, resultLine } from './results.js';

/**
 * Live progress of a fan-out. On a TTY: a listr2 view on stderr with done, failed, running and
 * ETA, and the latest failures under it while it runs. Off a TTY: one plain line per finished
 * target on stderr. With --quiet: nothing.
 *
 * The view ends with the true outcome, never a bare "done": how many succeeded, failed and were
 * skipped, how many never ran (total minus those that finished: a stopped or interrupted fan-out
 * does not report every item), and whether it was interrupted or stopped. Failures are not kept
 * in the last frame: the caller prints them once, in one table, after it.
 */
export interface Progress {
  started(label: string): void;
  finished(result: TenantResult): void;
  /** Draw the last frame with the outcome and wait for it. Idempotent. */
  close(end?: ProgressEnd): Promise<void>;
}

export interface ProgressEnd {
  /** Ctrl-C or SIGTERM stopped scheduling. */
  interrupted?: boolean;
}

export interface Tally {
  total: number;
  succeeded: number;
  failed: number;
  skipped: number;
  running: number;
}

/**
 * The outcome line, e.g. `tenant create: interrupted: 12 succeeded, 1 failed, 87 not run of 100`.
 *
 * @example
 *   outcomeLine('migrate up', { total: 28, succeeded: 28, failed: 0, skipped: 0, running: 0 }, {})
 *   // 'migrate up: 28 of 28 done: 28 succeeded'
 */
export function outcomeLine(title: string, t: Tally, end: ProgressEnd): { ok: boolean; text: string } {
  const finished = t.succeeded + t.failed + t.skipped;
  const never = Math.max(0, t.total - finished);
  const parts = [`${t.succeeded} succeeded`];
  if (t.failed || never || end.interrupted) parts.push(`${t.failed} failed`);
  if (t.skipped) parts.push(`${t.skipped} skipped`);
  if (never) parts.push(`${never} not run`);
  const state = end.interrupted ? 'interrupted' : never > 0 ? 'stopped' : t.failed > 0 ? 'finished with failures' : 'done';
  const ok = state === 'done';
  return { ok, text: `${title}: ${state}: ${parts.join(', ')} of ${t.total}` };
}

export function createProgress(out: Output, title: string, total: number): Progress {
  if (out.quiet || total === 0) return { started() {}, finished() {}, close: async () => {} };
  if (!out.tty) return plainProgress(out, title, total);
  return listrProgress(out, title, total);
}

function tally(total: number) {
  const t: Tally = { total, succeeded: 0, failed: 0, skipped: 0, running: 0 };
  const count = (r: TenantResult) => {
    if (notRun(r)) return; // not run: total minus finished
    if (r.status === 'succeeded') t.succeeded++;
    else if (r.status === 'failed') t.failed++;
    else t.skipped++;
  };
  return { t, count };
}

function plainProgress(out: Output, title: string, total: number): Progress {
  const { t, count } = tally(total);
  let closed = false;
  return {
    started() {},
    finished(r) {
      count(r);
      // Thousands of "not run" lines say nothing one closing line does not.
      if (!notRun(r)) out.info(resultLine(out, r));
    },
    async close(end = {}) {
      if (closed) return;
      closed = true;
      const o = outcomeLine(title, t, end);
      if (!o.ok && (end.interrupted || t.total > t.succeeded + t.failed + t.skipped)) out.info(o.text);
    },
  };
}

function listrProgress(out: Output, title: string, total: number): Progress {
  // listr2 is loaded only for the live view: CI runs (off a TTY) never pay for it.
  const loaded = import('listr2');
  const startedAt = Date.now();
  const { t, count } = tally(total);
  let end: ProgressEnd | undefined;
  let finish!: () => void;
  const allDone = new Promise<void>((r) => (finish = r));
  const failures: string[] = [];
  const status = () => {
    const done = t.succeeded + t.failed + t.skipped;
    const elapsed = (Date.now() - startedAt) / 1000;
    const eta = done > 0 ? Math.max(0, ((total - done) * elapsed) / done) : NaN;
    return `${title}: ${done}/${total} finished, ${t.failed} failed, ${t.running} running${Number.isFinite(eta) ? `, ETA ${eta.toFixed(0)}s` : ''}`;
  };
  class Outcome extends Error {}
  const run = loaded
    .then(({ Listr, ListrLogger, ProcessOutput }) =>
      new Listr(
        [
          {
            title: status(),
            task: async (_ctx, task) => {
              const timer = setInterval(() => {
                task.title = status();
                // The latest failures while it runs; gone from the last frame (persistentOutput
                // off), because the caller's table lists every one of them once.
                if (failures.length) task.output = failures.slice(-10).join('\n');
              }, 100);
              await allDone;
              clearInterval(timer);
              task.output = '';
              const o = outcomeLine(title, t, end ?? {});
              task.title = o.text;
              // A failed task draws ✖: the last frame must not show ✔ for a run that did not finish.
              if (!o.ok) throw new Outcome(o.text);
            },
            rendererOptions: { persistentOutput: false, outputBar: 10 },
          },
        ],
        {
          renderer: 'default',
          exitOnError: false,
          // stdout is for results (and the JSON document); the live view goes to stderr.
          rendererOptions: {
            collapseErrors: true,
            showErrorMessage: false,
            logger: new ListrLogger({ processOutput: new ProcessOutput(process.stderr, process.stderr) }),
          },
          registerSignalListeners: false,
        },
      ).run(),
    )
    .catch(() => undefined);
  return {
    started() {
      t.running++;
    },
    finished(r) {
      t.running = Math.max(0, t.running - 1);
      count(r);
      if (r.status === 'failed') failures.push(out.color.red(`✖ ${escapeControl(r.tenant)}: ${escapeControl(errorText(r))}`));
    },
    async close(e = {}) {
      end ??= e;
      finish();
      await run;
    },
  };
}
