import type { Command } from 'commander';
import { EXIT } from '../errors.js';
import { renderDoctor } from '../report/doctor.js';
import { action } from './run.js';

export function registerDoctorCommand(program: Command): void {
  program
    .command('doctor')
    .description('check config, connectivity, versions, roles and tools')
    .addHelpText('after', '\nExample:\n  tenantctl doctor\n')
    .action(
      action('doctor', async (ctx) => {
        const { runDoctor } = await import('../doctor/checks.js');
        const checks = await runDoctor(ctx.config, await ctx.fleet());
        return renderDoctor(ctx.out, checks) ? EXIT.ok : EXIT.failed;
      }),
    );
}
