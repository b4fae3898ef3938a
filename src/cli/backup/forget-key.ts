import type { Command } from 'commander';
import { confirmDestructive } from '../confirm.js';
import { action } from '../run.js';

/** `backup forget-key`. */
export function registerBackupForgetKey(backup: Command): void {
  backup
    .command('forget-key <slug>')
    .description("destroy a tenant's backup data key: every encrypted archive of it becomes unreadable")
    .addHelpText('after', '\nExample:\n  tenantctl backup forget-key acme --yes\n')
    .option('--yes', 'confirm without asking')
    .action(
      action('backup forget-key', async (ctx, slug: string, flags: { yes?: boolean }) => {
        const { assertSlug } = await import('../../placement/slug.js');
        assertSlug(slug);
        await confirmDestructive(
          ctx,
          flags.yes,
          `destroy the backup data key of ${slug} (all its encrypted backups become unreadable for good)`,
        );
        const db = await ctx.catalog();
        const { forgetTenantKeys } = await import('../../backup/forget-key.js');
        const { withTenantLock } = await import('../../operations/tenant-lock.js');
        const { recordEvent } = await import('../../catalog/events.js');
        const r = await withTenantLock(db, slug, { command: ctx.command }, () => forgetTenantKeys(ctx.config, db, slug));
        const n = r.keysDestroyed;
        await recordEvent(db, {
          command: ctx.command,
          action: 'backup key destroyed',
          result: 'ok',
          tenant: slug,
          details: { keys: n, ...r },
        });
        if (ctx.out.json) ctx.out.document({ command: ctx.command, ok: true, tenant: slug, ...r });
        else
          ctx.out.print(
            `${
              n
                ? `destroyed ${n} data key${n === 1 ? '' : 's'} of ${slug}: its encrypted backups can no longer be read`
                : `${slug} had no live backup data key`
            }; erased the key copies of ${r.archiveCopiesErased} archive${r.archiveCopiesErased === 1 ? '' : 's'} and ${r.catalogBackupsScrubbed} catalog backup${r.catalogBackupsScrubbed === 1 ? '' : 's'}`,
          );
        // No key erases an archive written without one: said, so nobody takes it for erased.
        if (r.plainArchives.length)
          ctx.out.error(
            `warning: ${r.plainArchives.length} archive${r.plainArchives.length === 1 ? '' : 's'} of ${slug} ${r.plainArchives.length === 1 ? 'was' : 'were'} written without encryption and ${r.plainArchives.length === 1 ? 'stays' : 'stay'} readable: ${r.plainArchives.join(', ')}; delete ${r.plainArchives.length === 1 ? 'it' : 'them'} from the backup storage to erase ${r.plainArchives.length === 1 ? 'it' : 'them'} too`,
          );
      }),
    );
}
