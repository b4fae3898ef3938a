import type { Command } from 'commander';
import { UsageError } from '../errors.js';
import { action } from './run.js';

/** `pitr setup | backup | status`: WAL archiving and base backups with pgBackRest, per shard. */
export function registerPitrCommands(program: Command): void {
  const pitr = program
    .command('pitr')
    .description('point-in-time restore: WAL archiving and base backups with pgBackRest, per shard')
    .addHelpText('after', '\nExample:\n  tenantctl pitr setup --shard us1 && tenantctl pitr backup --type full && tenantctl pitr status\n');
  pitr
    .command('setup')
    .description("check each shard's archiving settings (prints what it needs) and create its pgBackRest stanza")
    .option('--shard <shard>', 'only this shard')
    .action(
      action('pitr setup', async (ctx, flags: { shard?: string }) => {
        const { pitrSetup } = await import('../pitr/setup.js');
        const { renderPitrSetup } = await import('../report/pitr.js');
        await sweep(ctx);
        const rows = await pitrSetup(ctx.config, await ctx.fleet(), flags.shard);
        renderPitrSetup(ctx.out, ctx.command, rows);
        return rows.every((r) => r.stanza === 'ok' && r.needs.every((n) => n.ok)) ? 0 : 1;
      }),
    );
  pitr
    .command('backup')
    .description('take a base backup of each shard with pgBackRest (cron: a weekly full, a daily incr)')
    .addHelpText('after', '\nExample:\n  tenantctl pitr backup --type incr\n')
    .option('--shard <shard>', 'only this shard')
    .option('--type <type>', 'full or incr', 'incr')
    .action(
      action('pitr backup', async (ctx, flags: { shard?: string; type: string }) => {
        if (flags.type !== 'full' && flags.type !== 'incr')
          throw new UsageError('USAGE', `--type ${flags.type} is not full or incr`, 'pass --type full or --type incr');
        const { pitrBackup } = await import('../pitr/setup.js');
        const { renderPitrBackup } = await import('../report/pitr.js');
        await sweep(ctx);
        const rows = await pitrBackup(ctx.config, await ctx.fleet(), { shard: flags.shard, type: flags.type });
        renderPitrBackup(ctx.out, ctx.command, rows);
        return rows.every((r) => r.status === 'succeeded') ? 0 : 1;
      }),
    );
  pitr
    .command('status')
    .description("each shard's recoverable window (oldest base backup to last archived WAL) and archiving health")
    .option('--shard <shard>', 'only this shard')
    .action(
      action('pitr status', async (ctx, flags: { shard?: string }) => {
        const { pitrStatus } = await import('../pitr/setup.js');
        const { renderPitrStatus } = await import('../report/pitr.js');
        await sweep(ctx);
        const rows = await pitrStatus(ctx.config, await ctx.fleet(), flags.shard);
        renderPitrStatus(ctx.out, ctx.command, rows);
        return rows.every((r) => r.healthy && r.window) ? 0 : 1;
      }),
    );
}

/** What killed restores to a point in time left: removed by the next pitr command, said on stderr. */
async function sweep(ctx: import('./context.js').CommandContext): Promise<void> {
  const { sweepScratches } = await import('../pitr/sweep.js');
  for (const note of await sweepScratches(await ctx.catalog())) ctx.out.error(ctx.out.color.yellow(`warning: ${note}`));
}
