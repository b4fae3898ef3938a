import type { MigrationFile } from '../migrate/files.js';
import type { OperationDeps } from '../operations/tenant-operation.js';
import type { CommandContext } from './context.js';

/**
 * The deps every per-tenant operation runs with (src/operations/tenant-operation.ts), built in ONE
 * place from the command's context: config, catalog, fleet, the command's name, `--wait` (and who
 * is waited for, said once), Ctrl-C's notice on the command's output; the migration files when
 * the operation builds or migrates a placement.
 */
export async function operationDeps(ctx: CommandContext, o: { wait?: boolean }): Promise<OperationDeps>;
export async function operationDeps(
  ctx: CommandContext,
  o: { wait?: boolean; migrations: true },
): Promise<OperationDeps & { migrations: MigrationFile[] }>;
export async function operationDeps(
  ctx: CommandContext,
  o: { wait?: boolean; migrations?: boolean },
): Promise<OperationDeps & { migrations?: MigrationFile[] }> {
  const migrations = o.migrations ? await (await import('../migrate/files.js')).loadMigrations(ctx.config.migrationsDir) : undefined;
  return {
    config: ctx.config,
    db: await ctx.catalog(),
    fleet: await ctx.fleet(),
    command: ctx.command,
    wait: o.wait,
    onWaiting: (holder: string) => ctx.out.info(`waiting for the tenant lock: ${holder}`),
    out: (line: string) => ctx.out.error(line),
    ...(migrations ? { migrations } : {}),
  };
}
