import type { Command } from 'commander';
import { renderTable } from '../report/table.js';
import { styled } from '../report/escape.js';
import { action } from './run.js';

export function registerDoctorCommand(program: Command): void {
  program
    .command('doctor')
    .description('check config, connectivity, versions, roles and tools')
    .addHelpText('before', 'Example:\n  tenantctl doctor\n')
    .action(
      action('doctor', async (ctx) => {
        const { runDoctor } = await import('../doctor/checks.js');
        const checks = await runDoctor(ctx.config, await ctx.fleet());
        const ok = checks.every((c) => c.ok);
        if (ctx.out.json) ctx.out.document({ command: 'doctor', ok, checks });
        else ctx.out.print(renderTable(ctx.out, ['check', 'ok', 'detail'], checks.map((c) => [c.check, styled(c.ok ? ctx.out.color.green('ok') : ctx.out.color.red('FAIL')), c.detail])));
        return ok ? 0 : 1;
      }),
    );
}
