import type { Command } from 'commander';
import { confirmDestructive } from '../confirm.js';
import { action } from '../run.js';
import { operationDeps } from '../operation-deps.js';

/** `move rollback`. */
export function registerMoveRollback(move: Command): void {
  move
    .command('rollback <slug>')
    .description('point the tenant back at its untouched source and remove the copy')
    .option('--yes', 'confirm without asking')
    .option('--wait', 'wait for another command working on the tenant instead of exit 3')
    .action(
      action('move rollback', async (ctx, slug: string, flags: { yes?: boolean; wait?: boolean }) => {
        const f = { ...move.opts(), ...flags } as typeof flags;
        await confirmDestructive(ctx, f.yes, `roll back the move of ${slug} (its copy is removed)`);
        const { rollbackMove } = await import('../../move/rollback.js');
        const { renderRollback } = await import('../../report/move.js');
        renderRollback(ctx.out, ctx.command, await rollbackMove(await operationDeps(ctx, { wait: f.wait }), slug));
      }),
    );
}
