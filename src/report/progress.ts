import type { TenantResult } from '../fanout/result.js';
import type { Output } from './output.js';
import { errorText, resultLine } from './results.js';

/**
 * Live progress of a fan-out. On a TTY: a listr2 view on stderr with done, failed, running and
 * ETA, failures listed as they happen. Off a TTY: one plain line per finished target on stderr.
 * With --quiet: nothing.
 */
export interface Progress {
  started(label: string): void;
  finished(result: TenantResult): void;
  /** Wait for the live view to draw its last frame. */
  close(): Promise<void>;
}

export function createProgress(out: Output, title: string, total: number): Progress {
  if (out.quiet || total === 0) return { started() {}, finished() {}, close: async () => {} };
  if (!out.tty) {
    return {
      started() {},
      finished(r) {
        out.info(resultLine(out, r));
      },
      close: async () => {},
    };
  }
  return listrProgress(out, title, total);
}

function listrProgress(out: Output, title: string, total: number): Progress {
  // listr2 is loaded only for the live view: CI runs (off a TTY) never pay for it.
  const loaded = import('listr2');
  const started = Date.now();
  let done = 0;
  let failed = 0;
  let running = 0;
  let finish!: () => void;
  const allDone = new Promise<void>((r) => (finish = r));
  const failures: string[] = [];
  const status = () => {
    const elapsed = (Date.now() - started) / 1000;
    const eta = done > 0 ? Math.max(0, ((total - done) * elapsed) / done) : NaN;
    return `${title}: ${done}/${total} done, ${failed} failed, ${running} running${Number.isFinite(eta) ? `, ETA ${eta.toFixed(0)}s` : ''}`;
  };
  const run = loaded.then(({ Listr, ListrLogger, ProcessOutput }) => new Listr(
    [
      {
        title: status(),
        task: async (_ctx, task) => {
          const timer = setInterval(() => {
            task.title = status();
            if (failures.length) task.output = failures.slice(-10).join('\n');
          }, 100);
          await allDone;
          clearInterval(timer);
          task.title = status();
          if (failures.length) task.output = failures.slice(-10).join('\n');
        },
        rendererOptions: { persistentOutput: true, outputBar: 10 },
      },
    ],
    {
      renderer: 'default',
      // stdout is for results (and the JSON document); the live view goes to stderr.
      rendererOptions: { logger: new ListrLogger({ processOutput: new ProcessOutput(process.stderr, process.stderr) }) },
      registerSignalListeners: false,
    },
  ).run()).catch(() => undefined);
  return {
    started() {
      running++;
    },
    finished(r) {
      running = Math.max(0, running - 1);
      done++;
      if (r.status === 'failed') {
        failed++;
        failures.push(out.color.red(`✖ ${r.tenant}: ${errorText(r)}`));
      }
    },
    async close() {
      finish();
      await run;
    },
  };
}
