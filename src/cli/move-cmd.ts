import type { Command } from 'commander';
import type { CommandContext } from './context.js';
import { confirmDestructive } from './confirm.js';
import { action } from './run.js';
import { operationDeps } from './operation-deps.js';

/** `move <slug>` and `move status | complete | rollback <slug>`: thin adapters over src/move/. */
export function registerMoveCommands(program: Command): void {
  const move = program
    .command('move')
    .description('move a tenant to another shard, region or model (verified, fenced, reversible)')
    .addHelpText(
      'after',
      '\nExample:\n  tenantctl move acme --to-shard eu1 --to-model database --yes\n  tenantctl move status acme\n  tenantctl move complete acme --yes\n',
    )
    .argument('[slug]', 'the tenant to move')
    .option('--to-shard <shard>', 'the target shard')
    .option('--to-region <region>', 'the target region (its least-loaded shard)')
    .option('--to-model <model>', 'pool, schema or database (default: its model now)')
    .option('--dry-run', 'print the plan and stop')
    .option('--fast-load', "into a pool: check foreign keys once after the load (locks the target pool's tables meanwhile)")
    .option('--online', 'same model only: copy and stream with logical replication, block writes only for the last catch-up')
    .option('--yes', "confirm without asking (the tenant's writes are blocked while it is copied)")
    .option('--wait', 'wait for another command working on the tenant instead of exit 3')
    .action(
      action(
        'move',
        async (
          ctx: CommandContext,
          slug: string | undefined,
          flags: {
            toShard?: string;
            toRegion?: string;
            toModel?: string;
            dryRun?: boolean;
            online?: boolean;
            fastLoad?: boolean;
            yes?: boolean;
            wait?: boolean;
          },
        ) => {
          const { UsageError } = await import('../errors.js');
          if (!slug)
            throw new UsageError('USAGE', 'which tenant? tenantctl move <slug> --to-shard S | --to-region R', 'see tenantctl move --help');
          const { moveTenant } = await import('../move/run.js');
          const { moveView, renderMove } = await import('../report/move.js');
          const deps = await operationDeps(ctx, { wait: flags.wait, migrations: true });
          if (!flags.dryRun && !flags.online)
            await confirmDestructive(ctx, flags.yes, `move ${slug} (its writes are blocked while it is copied)`);
          const view = flags.dryRun ? undefined : moveView(ctx.out, slug, Boolean(flags.online));
          // Ctrl-C (or a job's SIGTERM) is the engine's (src/operations/tenant-operation.ts): the
          // move stops before the switch, lifting the fence and removing the copy, exit 130.
          try {
            const r = await moveTenant({ ...deps, onPhase: view?.onPhase, onProgress: view?.onProgress }, slug, flags);
            await view?.close();
            renderMove(ctx.out, ctx.command, r);
            return r.status === 'failed' ? 1 : 0;
          } finally {
            await view?.close();
          }
        },
      ),
    );

  move
    .command('status <slug>')
    .description("the tenant's latest move: phase, rows and bytes copied, how long writes were blocked")
    .action(
      action('move status', async (ctx, slug: string) => {
        const { moveStatus } = await import('../move/status.js');
        const { renderMoveStatus } = await import('../report/move.js');
        renderMoveStatus(ctx.out, ctx.command, await moveStatus(await ctx.catalog(), slug, await ctx.fleet()));
      }),
    );

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
        const { completeMove } = await import('../move/complete.js');
        const { renderComplete } = await import('../report/move.js');
        renderComplete(
          ctx.out,
          ctx.command,
          await completeMove({ ...(await operationDeps(ctx, { wait: f.wait })), discardSourceWrites: f.discardSourceWrites }, slug),
        );
      }),
    );

  move
    .command('rollback <slug>')
    .description('point the tenant back at its untouched source and remove the copy')
    .option('--yes', 'confirm without asking')
    .option('--wait', 'wait for another command working on the tenant instead of exit 3')
    .action(
      action('move rollback', async (ctx, slug: string, flags: { yes?: boolean; wait?: boolean }) => {
        const f = { ...move.opts(), ...flags } as typeof flags;
        await confirmDestructive(ctx, f.yes, `roll back the move of ${slug} (its copy is removed)`);
        const { rollbackMove } = await import('../move/rollback.js');
        const { renderRollback } = await import('../report/move.js');
        renderRollback(ctx.out, ctx.command, await rollbackMove(await operationDeps(ctx, { wait: f.wait }), slug));
      }),
    );
}
