import type { Command } from 'commander';
import type { DevShardResult } from '../dev/fleet.js';
import { EXIT } from '../errors.js';
import { renderDevShards } from '../report/dev.js';
import { action } from './run.js';

export function registerDevCommands(program: Command): void {
  const dev = program
    .command('dev')
    .description("embedded PostgreSQL clusters for the config's embedded shards")
    .addHelpText('after', '\nExample:\n  tenantctl dev up\n');
  const verbs: [string, string, string][] = [
    ['up', 'create and start every embedded shard (idempotent)', 'devUp'],
    ['down', 'stop every embedded shard, keeping its data', 'devDown'],
    ['status', 'whether each embedded shard is running', 'devStatus'],
    ['reset', 'stop, delete the data of, and start again every embedded shard', 'devReset'],
  ];
  for (const [verb, description, fn] of verbs) {
    const cmd = dev.command(verb).description(description);
    // Only reset destroys anything; the others take no confirmation.
    if (verb === 'reset') cmd.option('--yes', 'confirm: reset deletes every tenant of the embedded fleet');
    cmd.action(
      action(`dev ${verb}`, async (ctx, opts: { yes?: boolean }) => {
        if (verb === 'reset') {
          const { confirmDestructive } = await import('./confirm.js');
          await confirmDestructive(ctx, opts.yes, 'delete all data of the embedded shards');
        }
        const mod = await import('../dev/fleet.js');
        const run = mod[fn as 'devUp'] as (c: typeof ctx.config, o: { archive: boolean }) => Promise<DevShardResult[]>;
        // `dev status` answers "is the fleet up?": any embedded shard not running is exit 1, so
        // `tenantctl dev status || tenantctl dev up` works in scripts.
        const healthy = verb === 'status' ? (r: DevShardResult) => r.state === 'running' : undefined;
        // `dev up` archives WAL with pgBackRest when it is installed (point-in-time restore).
        return renderDevShards(ctx.out, `dev ${verb}`, await run(ctx.config, { archive: true }), healthy) ? EXIT.ok : EXIT.failed;
      }),
    );
  }
}
