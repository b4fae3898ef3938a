import { confirmDestructive } from './confirm.js';
import type { CommandContext } from './context.js';
import { UsageError } from '../errors.js';

/** `restore <slug> --at <time> (--as <new-slug> | --replace --yes)`: a thin adapter over restoreAt. */
export async function restoreAtCommand(
  ctx: CommandContext,
  slug: string,
  flags: { at: string; as?: string; shard?: string; model?: string; replace?: boolean; yes?: boolean; wait?: boolean },
): Promise<number> {
  const at = new Date(flags.at);
  if (Number.isNaN(at.getTime()))
    throw new UsageError('BAD_INPUT', `--at ${flags.at} is not a time`, "give an ISO time with its zone: --at '2026-12-05T14:00:00Z'");
  if (flags.replace) await confirmDestructive(ctx, flags.yes, `replace the data of ${slug} with its data at ${at.toISOString()}`);
  const { restoreAt } = await import('../pitr/restore-at.js');
  const { loadMigrations } = await import('../migrate/files.js');
  const { renderRestoreAt, phaseLine } = await import('../report/pitr.js');
  const r = await restoreAt(
    {
      config: ctx.config,
      db: await ctx.catalog(),
      fleet: await ctx.fleet(),
      command: ctx.command,
      wait: flags.wait,
      migrations: await loadMigrations(ctx.config.migrationsDir),
      onPhase: phaseLine(ctx.out),
    },
    { slug, at, as: flags.as, replace: flags.replace, shard: flags.shard, model: flags.model },
  );
  if (ctx.out.tty && !ctx.out.quiet) process.stderr.write('\r\x1b[K');
  renderRestoreAt(ctx.out, ctx.command, r);
  return r.status === 'succeeded' ? 0 : 1;
}
