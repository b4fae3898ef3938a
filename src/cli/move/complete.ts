import type { Command } from 'commander';
import { confirmDestructive } from '../confirm.js';
import { action } from '../run.js';
import { operationDeps } from '../operation-deps.js';

/** `move complete`. */
export function registerMoveComplete(move: Command): void {
  move
    .command('complete <slug>')
    .description('make a switched move final: prove the source unchanged since the switch, then remove it (or its rows)')
    .option('--yes', 'confirm without asking')
    .option('--wait', 'wait for another command working on the tenant instead of exit 3')
    .option('--discard-source-writes', 'remove the source even if it was written after the switch (those writes are lost)')
    .action(
      action('move complete', async (ctx, slug: string, flags: { yes?: boolean; wait?: boolean; discardSourceWrites?: boolean }) => {
        // --yes and --wait after the subcommand are parsed by `move` itself (it has them too).
        const f = { ...move.opts(), ...flags } as typeof flags;
        await confirmDestructive(ctx, f.yes, `remove ${slug}'s old placement`);
        const { completeMove } = await import('../../move/complete.js');
        const { renderComplete } = await import('../../report/move.js');
        renderComplete(
          ctx.out,
          ctx.command,
          await completeMove({ ...(await operationDeps(ctx, { wait: f.wait })), discardSourceWrites: f.discardSourceWrites }, slug),
        );
      }),
    );
}
