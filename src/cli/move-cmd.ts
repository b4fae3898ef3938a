import type { Command } from 'commander';
import type { CommandContext } from './context.js';
import { confirmDestructive } from './confirm.js';
import { action } from './run.js';
import { flagDuration, lockWaitOption } from './options.js';
import { operationDeps } from './operation-deps.js';
import { registerMoveStatus } from './move/status.js';
import { registerMoveComplete } from './move/complete.js';
import { registerMoveRollback } from './move/rollback.js';

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
    .addOption(lockWaitOption())
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
            lockWait?: string;
          },
        ) => {
          const { UsageError } = await import('../errors.js');
          if (!slug)
            throw new UsageError('USAGE', 'which tenant? tenantctl move <slug> --to-shard S | --to-region R', 'see tenantctl move --help');
          // No destination is the first thing to say, before any --yes question.
          (await import('../move/plan.js')).assertMoveDestination(flags);
          const lockWaitMs = flagDuration('--lock-wait', flags.lockWait);
          // The move's code loads while the config, the migrations and the catalog's connection are read.
          const [{ moveTenant }, { moveView, renderMove }, deps] = await Promise.all([
            import('../move/run.js'),
            import('../report/move.js'),
            operationDeps(ctx, { wait: flags.wait, migrations: true }),
          ]);
          if (!flags.dryRun && !flags.online)
            await confirmDestructive(ctx, flags.yes, `move ${slug} (its writes are blocked while it is copied)`);
          const view = flags.dryRun ? undefined : moveView(ctx.out, slug, Boolean(flags.online));
          // Ctrl-C (or a job's SIGTERM) is the engine's (src/operations/tenant-operation.ts): the
          // move stops before the switch, lifting the fence and removing the copy, exit 130.
          try {
            const r = await moveTenant({ ...deps, onPhase: view?.onPhase, onProgress: view?.onProgress }, slug, { ...flags, lockWaitMs });
            await view?.close();
            renderMove(ctx.out, ctx.command, r);
            return r.status === 'failed' ? 1 : 0;
          } finally {
            await view?.close();
          }
        },
      ),
    );
  registerMoveStatus(move);
  registerMoveComplete(move);
  registerMoveRollback(move);
}
