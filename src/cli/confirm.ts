import { UsageError } from '../errors.js';
import { canPrompt, type CommandContext } from './context.js';

/**
 * Destructive commands ask on a TTY and need --yes elsewhere (exit 2, nothing changed).
 */
export async function confirmDestructive(ctx: CommandContext, yes: boolean | undefined, what: string): Promise<void> {
  if (yes) return;
  if (!canPrompt(ctx)) {
    throw new UsageError('NEEDS_YES', `refusing to ${what} without --yes (no terminal to ask on)`, 'pass --yes to confirm');
  }
  const { confirm } = await import('@inquirer/prompts');
  const ok = await confirm({ message: `${what}?`, default: false }, { output: process.stderr });
  if (!ok) throw new UsageError('NEEDS_YES', `cancelled: did not ${what}`, 'nothing was changed');
}
