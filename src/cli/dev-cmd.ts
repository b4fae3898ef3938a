import type { Command } from 'commander';
import type { DevShardResult } from '../dev/fleet.js';
import { renderTable } from '../report/table.js';
import type { CommandContext } from './context.js';
import { action } from './run.js';

function report(ctx: CommandContext, command: string, results: DevShardResult[]): number {
  const ok = results.every((r) => r.state !== 'failed');
  if (ctx.out.json) ctx.out.document({ command, ok, results });
  else
    ctx.out.print(
      renderTable(ctx.out, ['shard', 'region', 'port', 'state', 'data'], results.map((r) => [r.shard, r.region, r.port, r.error ? `${r.state}: ${r.error}` : r.state, r.dataDir])),
    );
  return ok ? 0 : 1;
}

export function registerDevCommands(program: Command): void {
  const dev = program
    .command('dev')
    .description('embedded PostgreSQL clusters for the config\'s embedded shards')
    .addHelpText('before', 'Example:\n  tenantctl dev up\n');
  const verbs: [string, string, string][] = [
    ['up', 'create and start every embedded shard (idempotent)', 'devUp'],
    ['down', 'stop every embedded shard, keeping its data', 'devDown'],
    ['status', 'whether each embedded shard is running', 'devStatus'],
    ['reset', 'stop, delete the data of, and start again every embedded shard', 'devReset'],
  ];
  for (const [verb, description, fn] of verbs) {
    dev
      .command(verb)
      .description(description)
      .option('--yes', 'confirm (reset deletes every tenant of the embedded fleet)')
      .action(
        action(`dev ${verb}`, async (ctx, opts: { yes?: boolean }) => {
          if (verb === 'reset') {
            const { confirmDestructive } = await import('./confirm.js');
            await confirmDestructive(ctx, opts.yes, 'delete all data of the embedded shards');
          }
          const mod = await import('../dev/fleet.js');
          const run = mod[fn as 'devUp'] as (c: typeof ctx.config) => Promise<DevShardResult[]>;
          return report(ctx, `dev ${verb}`, await run(ctx.config));
        }),
      );
  }
}
