import type { Command } from 'commander';
import { action } from '../run.js';

/** `backup verify`. */
export function registerBackupVerify(backup: Command): void {
  backup
    .command('verify <backup>')
    .description("check a backup's manifest, checksums and data (no database needed unless encrypted)")
    .addHelpText('after', '\nExample:\n  tenantctl backup verify acme.20261126T225317123Z\n')
    .action(
      action('backup verify', async (ctx, id: string) => {
        const { verifyBackup } = await import('../../backup/verify.js');
        const { renderVerify } = await import('../../report/backup.js');
        const r = await verifyBackup(ctx.config, id, () => ctx.catalog());
        renderVerify(ctx.out, ctx.command, r);
        return r.ok ? 0 : 2;
      }),
    );
}
