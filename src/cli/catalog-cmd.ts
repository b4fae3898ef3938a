import { counted } from '../report/count.js';
import type { Command } from 'commander';
import { confirmDestructive } from './confirm.js';
import { action } from './run.js';

/** `catalog backup | restore | list`: thin adapters over src/catalog-backup/. */
export function registerCatalogCommands(program: Command): void {
  const catalog = program.command('catalog').description("the catalog's own backups, so the control plane survives losing it");

  catalog
    .command('backup')
    .description("write the whole catalog (tenants, events, operations, wrapped backup data keys) to a region's backup storage")
    .addHelpText('after', '\nExample:\n  tenantctl catalog backup\n  tenantctl catalog backup --region eu-west\n')
    .option('--region <region>', 'whose backup storage keeps it (default: the default region)')
    .action(
      action('catalog backup', async (ctx, flags: { region?: string }) => {
        const { backupCatalog } = await import('../catalog-backup/create.js');
        const { recordEvent } = await import('../catalog/events.js');
        const db = await ctx.catalog();
        const r = await backupCatalog(ctx.config, db, { region: flags.region });
        await recordEvent(db, { command: ctx.command, action: 'catalog backed up', result: 'ok', tenant: null, details: { ...r } });
        if (ctx.out.json) ctx.out.document({ command: ctx.command, ok: true, ...r });
        else
          ctx.out.print(
            `catalog backed up as ${r.backup} in ${r.storage}: ${counted(r.rows.tenants, 'tenant')}, ${counted(r.rows.events, 'event')}, ${counted(r.rows.operations, 'operation')}, ${counted(r.rows.backup_keys, 'backup key')}`,
          );
      }),
    );

  catalog
    .command('restore')
    .description('load a catalog backup (the newest, or --from) into an empty catalog database')
    .addHelpText(
      'after',
      '\nExample:\n  tenantctl catalog restore --yes\n  tenantctl catalog restore --from catalog.20261126T225317123Z --yes\n',
    )
    .option('--from <backup>', 'the catalog backup to load (default: the newest in any region)')
    .option('--yes', 'confirm without asking')
    .action(
      action('catalog restore', async (ctx, flags: { from?: string; yes?: boolean }) => {
        await confirmDestructive(
          ctx,
          flags.yes,
          `load ${flags.from ?? 'the newest catalog backup'} into the catalog (which must be empty)`,
        );
        const { restoreCatalog } = await import('../catalog-backup/restore.js');
        const { recordEvent } = await import('../catalog/events.js');
        const db = await ctx.catalog();
        const r = await restoreCatalog(ctx.config, db, { from: flags.from });
        await recordEvent(db, { command: ctx.command, action: 'catalog restored', result: 'ok', tenant: null, details: { ...r } });
        if (ctx.out.json) ctx.out.document({ command: ctx.command, ok: true, ...r });
        else
          ctx.out.print(
            `catalog restored from ${r.backup} (region ${r.region}): ${counted(r.rows.tenants, 'tenant')}, ${counted(r.rows.events, 'event')}, ${counted(r.rows.operations, 'operation')}, ${counted(r.rows.backup_keys, 'backup key')}`,
          );
      }),
    );

  catalog
    .command('list')
    .description('the catalog backups in every region, oldest first')
    .action(
      action('catalog list', async (ctx) => {
        const { listCatalogBackups } = await import('../catalog-backup/find.js');
        const all = (await listCatalogBackups(ctx.config)).map((b) => ({ id: b.id, region: b.region, storage: b.storage.location }));
        if (ctx.out.json) ctx.out.document({ command: ctx.command, ok: true, backups: all });
        else ctx.out.print(all.length ? all.map((b) => `${b.id}  ${b.region}  ${b.storage}`).join('\n') : 'no catalog backups');
      }),
    );
}
