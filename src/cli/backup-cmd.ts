import type { Command } from 'commander';
import type { CommandContext } from './context.js';
import { confirmDestructive } from './confirm.js';
import { action } from './run.js';
import { ERROR_CODES, EXIT } from '../errors.js';
import { flagDuration, lockWaitOption } from './options.js';
import { operationDeps } from './operation-deps.js';
import { registerBackupCreate } from './backup/create.js';
import { registerBackupList } from './backup/list.js';
import { registerBackupVerify } from './backup/verify.js';
import { registerBackupPrune } from './backup/prune.js';
import { registerBackupForgetKey } from './backup/forget-key.js';

/** `backup create | list | verify | prune | forget-key`: thin adapters over src/backup/. */
export function registerBackupCommands(program: Command): void {
  const backup = program.command('backup').description("per-tenant backups in each region's storage");
  registerBackupCreate(backup);
  registerBackupList(backup);
  registerBackupVerify(backup);
  registerBackupPrune(backup);
  registerBackupForgetKey(backup);
}

/** `restore <backup>`: as a new tenant, elsewhere, or in place. */
export function registerRestoreCommand(program: Command): void {
  program
    .command('restore <backup>')
    .description(
      'restore a backup as a new tenant (--as), elsewhere (--shard, --model), or in place (--replace --yes); with --at, <backup> is a tenant brought back to that time',
    )
    .addHelpText(
      'after',
      "\nExample:\n  tenantctl restore acme.20261126T225317123Z --as acme-copy --model pool\n  tenantctl restore acme.20261126T225317123Z --replace --yes\n  tenantctl restore acme --at '2026-12-05T14:00:00Z' --replace --yes\n",
    )
    .option('--at <time>', 'point-in-time restore of the tenant <backup> names, to this time (pgBackRest; see tenantctl pitr status)')
    .option('--as <slug>', 'restore as a new tenant with this slug (and a new key)')
    .option('--shard <shard>', 'place it on this shard')
    .option('--model <model>', 'pool, schema or database')
    .option('--replace', "swap the live tenant's data for the backup's (a safety backup is taken first)")
    .option('--yes', 'confirm --replace without asking')
    .option('--wait', 'wait for another command working on the tenant instead of exit 3')
    .addOption(lockWaitOption())
    .action(
      action(
        'restore',
        async (
          ctx: CommandContext,
          id: string,
          flags: {
            as?: string;
            shard?: string;
            model?: string;
            replace?: boolean;
            yes?: boolean;
            wait?: boolean;
            at?: string;
            lockWait?: string;
          },
        ) => {
          const lockWaitMs = flagDuration('--lock-wait', flags.lockWait);
          if (flags.at !== undefined) return (await import('./restore-at-cmd.js')).restoreAtCommand(ctx, id, { ...flags, at: flags.at });
          if (flags.replace) await confirmDestructive(ctx, flags.yes, `replace the data of the tenant in ${id} with the backup's`);
          const { restoreBackup } = await import('../backup/restore-run.js');
          const { renderRestore, progressLine } = await import('../report/backup.js');
          const live = progressLine(ctx.out);
          const r = await restoreBackup(
            { ...(await operationDeps(ctx, { wait: flags.wait, migrations: true })), onProgress: live },
            { backup: id, as: flags.as, shard: flags.shard, model: flags.model, replace: flags.replace, lockWaitMs },
          );
          if (ctx.out.tty && !ctx.out.quiet) process.stderr.write('\r\x1b[K');
          renderRestore(ctx.out, ctx.command, r);
          if (r.status === 'succeeded') return EXIT.ok;
          // A refusal found while loading (the archive's data does not match it) is exit 2, as verify's.
          return ERROR_CODES[r.error?.code as keyof typeof ERROR_CODES]?.exit === EXIT.usage ? EXIT.usage : EXIT.failed;
        },
      ),
    );
}
