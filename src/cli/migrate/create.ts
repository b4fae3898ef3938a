import type { Command } from 'commander';
import { action } from '../run.js';

/** `migrate create`. */
export function registerMigrateCreate(migrate: Command): void {
  migrate
    .command('create <name>')
    .description('write the next-numbered migration file in migrations.dir')
    .addHelpText(
      'after',
      '\nExamples:\n  tenantctl migrate create add_archived_at\n  tenantctl migrate create tasks_due_index --no-transaction\n',
    )
    .option('--ts', 'a Kysely TypeScript module instead of SQL')
    .option('--no-transaction', 'run outside a transaction (CREATE INDEX CONCURRENTLY)')
    .action(
      action('migrate create', async (ctx, name: string, flags: { ts?: boolean; transaction?: boolean }) => {
        const { createMigrationFile } = await import('../../migrate/create.js');
        const file = await createMigrationFile(ctx.config.migrationsDir, name, {
          ts: flags.ts,
          noTransaction: flags.transaction === false,
        });
        if (ctx.out.json) ctx.out.document({ command: 'migrate create', ok: true, file });
        else ctx.out.print(`created ${file}`);
      }),
    );
}
