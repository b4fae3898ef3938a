import { spawn } from 'node:child_process';
import { redactText } from '../config/redact.js';
import type { Output } from './output.js';

/**
 * Print a long result on a terminal through a pager, as git and gh do: when the text is taller
 * than the terminal, it goes to `$TENANTCTL_PAGER`, `$PAGER` or `less -FRX` (quit if it fits,
 * keep colours, leave the text on screen). Off a terminal, with --json, or when the pager cannot
 * be started, it is printed as is. `PAGER=cat` (or an empty TENANTCTL_PAGER) turns paging off.
 *
 * @example
 *   await printPaged(ctx.out, renderTable(ctx.out, head, rows));
 */
export async function printPaged(out: Output, text: string, env = process.env, stdout = process.stdout): Promise<void> {
  const rows = stdout.rows ?? 0;
  const lines = text.split('\n').length;
  const command = env.TENANTCTL_PAGER ?? env.PAGER ?? 'less -FRX';
  if (out.json || !out.tty || rows === 0 || lines < rows || command.trim() === '' || command.trim() === 'cat') {
    out.print(text);
    return;
  }
  // Ctrl-C belongs to the pager while it runs (less uses it to stop a search), as in git.
  const ignore = () => undefined;
  process.on('SIGINT', ignore);
  const paged = await new Promise<boolean>((resolve) => {
    // Through the shell, as $PAGER is a command line (`less -R`), like git runs it.
    const child = spawn(command, { shell: true, stdio: ['pipe', 'inherit', 'inherit'], env: { LESS: 'FRX', ...env } });
    let started = false;
    child.on('spawn', () => (started = true));
    child.on('error', () => resolve(false));
    // The reader quitting early (q in less) closes the pipe: that is not an error.
    child.stdin.on('error', () => undefined);
    child.stdin.end(`${redactText(text)}\n`);
    child.on('close', (code) => resolve(started && code !== 127));
  });
  process.off('SIGINT', ignore);
  if (!paged) out.print(text);
}
