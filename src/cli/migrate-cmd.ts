import type { Command } from 'commander';

/** The migrate command group; filled in by the migration fan-out. */
export function registerMigrateCommands(_program: Command): void {}
