import type { Command } from 'commander';
import { action } from '../run.js';

/** `move status`. */
export function registerMoveStatus(move: Command): void {
  move
    .command('status <slug>')
    .description("the tenant's latest move: phase, rows and bytes copied, how long writes were blocked")
    .action(
      action('move status', async (ctx, slug: string) => {
        const { moveStatus } = await import('../../move/status.js');
        const { renderMoveStatus } = await import('../../report/move.js');
        renderMoveStatus(ctx.out, ctx.command, await moveStatus(await ctx.catalog(), slug, await ctx.fleet()));
      }),
    );
}
