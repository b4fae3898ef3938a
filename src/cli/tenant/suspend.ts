import type { Command } from 'commander';
import { renderSuspended } from '../../report/tenant.js';
import { action } from '../run.js';
import { operationDeps } from '../operation-deps.js';
import { WAIT_HELP } from './wait-help.js';

/** `tenant suspend` and `tenant resume`. */
export function registerTenantSuspendResume(tenant: Command): void {
  for (const verb of ['suspend', 'resume'] as const) {
    tenant
      .command(`${verb} <slug>`)
      .description(
        verb === 'suspend'
          ? "cut a tenant's application off: no reads or writes until resume (it is still migrated)"
          : 'let a suspended tenant back in',
      )
      .addHelpText('after', `\nExample:\n  tenantctl tenant ${verb} acme\n`)
      .option('--wait', WAIT_HELP)
      .action(
        action(`tenant ${verb}`, async (ctx, slug: string, opts: { wait?: boolean }) => {
          const { setSuspended } = await import('../../provision/lifecycle.js');
          const deps = await operationDeps(ctx, { wait: opts.wait });
          const r = await setSuspended(deps, slug, verb === 'suspend');
          // What a killed operation left up (tenant show's `killed`): a resume does not lift a write fence.
          const { killedOperationsOf } = await import('../../operations/killed-of-tenant.js');
          const writesRefusedBy = (await killedOperationsOf(deps.db, slug)).filter((k) => k.writesRefused).map((k) => k.what);
          renderSuspended(ctx.out, ctx.command, { ...r, writesRefusedBy });
        }),
      );
  }
}
