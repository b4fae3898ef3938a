import type { Command } from 'commander';
import { registerMigrateUp } from './migrate/up.js';
import { registerMigrateStatus } from './migrate/status.js';
import { registerMigrateRepair } from './migrate/repair.js';
import { registerMigrateCreate } from './migrate/create.js';

/** The migrate command group: up, status, repair, create. */
export function registerMigrateCommands(program: Command): void {
  const migrate = program.command('migrate').description('apply migrations/ to every pool, schema and database target');
  registerMigrateUp(migrate);
  registerMigrateStatus(migrate);
  registerMigrateRepair(migrate);
  registerMigrateCreate(migrate);
}
