import { EXIT, TenantctlError } from '../errors.js';
import { escapeControl } from '../report/escape.js';

/**
 * Ctrl-C (SIGINT) and a job's SIGTERM, handled in ONE place for every command: the first signal
 * aborts the process's interrupt signal (operations stop at their next clean point, finishing or
 * undoing the step they are in), the second quits at once (exit 130). Installed on first use;
 * src/cli/main.ts's own handler exits at once when nobody installed this one.
 */
let controller: AbortController | undefined;
let notice = 'interrupted: stopping at the next clean point (Ctrl-C again to quit at once)';
let write: (line: string) => void = (line) => process.stderr.write(`${line}\n`);

export function interruptSignal(): AbortSignal {
  if (!controller) {
    const c = new AbortController();
    controller = c;
    const onSignal = () => {
      if (c.signal.aborted) {
        // Quit at once: what the step in hand leaves is what a kill leaves (a write fence may stay
        // up, refusing the tenant's writes); unlike the clean stop, nothing else will say so.
        process.stderr.write(
          `quit at once: what this command was doing is left as a killed run leaves it (a tenant's writes may stay refused); tenantctl doctor names it, and running it again finishes or undoes it: ${commandLine()}\n`,
        );
        process.exit(EXIT.interrupted);
      }
      c.abort();
      write(notice);
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  }
  return controller.signal;
}

/** What the first Ctrl-C prints (the command's own words: what it stops and how). */
export function onInterrupt(message: string, out?: (line: string) => void): AbortSignal {
  notice = `${message} (Ctrl-C again to quit at once)`;
  if (out) write = out;
  return interruptSignal();
}

/** An operation stopped by Ctrl-C: exit 130, its message says what was done, its hint the command that finishes it. */
export class InterruptedError extends TenantctlError {
  constructor(message: string, hint = 'run the command again to finish') {
    super('INTERRUPTED', message, hint, EXIT.interrupted);
    this.name = 'InterruptedError';
  }
}

export function isInterrupt(err: unknown): boolean {
  return err instanceof TenantctlError && err.code === 'INTERRUPTED';
}

/** Throw InterruptedError (with `message`) when the signal was aborted. */
export function stopIfInterrupted(signal: AbortSignal | undefined, message = 'interrupted'): void {
  if (signal?.aborted) throw new InterruptedError(message);
}

/** The command line this process was started with, quoted for a shell: the command that finishes an interrupted one. */
export function commandLine(): string {
  const q = (v: string) => (/^[\w@%+=:,./-]+$/.test(v) ? v : `'${v.replace(/'/g, `'\\''`)}'`);
  return escapeControl(['tenantctl', ...process.argv.slice(2).map(q)].join(' '));
}
