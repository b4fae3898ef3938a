import type { Command } from 'commander';
import { action } from '../run.js';

/** `backup list`. */
export function registerBackupList(backup: Command): void {
  backup
    .command('list [slug]')
    .description("backups in every region's storage, or one tenant's")
    .addHelpText('after', '\nExample:\n  tenantctl backup list acme\n')
    .action(
      action('backup list', async (ctx, slug: string | undefined) => {
        const { listBackups } = await import('../../backup/list.js');
        const { renderBackupList } = await import('../../report/backup.js');
        renderBackupList(ctx.out, ctx.command, await listBackups(ctx.config, slug));
      }),
    );
}
