import type { Command } from 'commander';
import { redactText } from '../config/redact.js';
import { lostConnectionError } from '../connection-loss.js';
import { EXIT, hintFor, TenantctlError } from '../errors.js';
import { CommandContext, type GlobalOptions } from './context.js';
import { closePromptly } from './prompt-exit.js';

/**
 * Wrap a command's action: build its context, run it, close connections, and map what it
 * returns (an exit code) or throws (a typed error) to the process exit code. This is the one
 * place errors become exit codes.
 */
export function action<A extends unknown[]>(
  name: string,
  fn: (ctx: CommandContext, ...args: A) => Promise<number | void>,
): (...args: unknown[]) => Promise<void> {
  return async (...args: unknown[]) => {
    const cmd = args[args.length - 1] as Command;
    const globals = cmd.optsWithGlobals() as GlobalOptions;
    const ctx = new CommandContext(globals, name);
    let code: number;
    try {
      await ctx.prepare();
      code = (await fn(ctx, ...(args.slice(0, -1) as A))) ?? EXIT.ok;
    } catch (err) {
      code = reportError(ctx, err);
    } finally {
      // The command's output is written; its connections are told to terminate, and node does not
      // wait for each server to hang up (src/cli/prompt-exit.ts).
      await closePromptly(() => ctx.close()).catch(() => undefined);
    }
    process.exitCode = code;
  };
}

export function reportError(ctx: CommandContext, err: unknown): number {
  // A shard or the catalog gone mid-command: one error naming it, not pg's message.
  if (!(err instanceof TenantctlError)) err = lostConnectionError(err, ctx.command) ?? err;
  if (err instanceof TenantctlError) {
    const msg = redactText(err.message);
    // The thrower's hint, else the code's own (src/errors.ts): every error says what to do.
    const hint = redactText(err.hint ?? hintFor(err.code));
    if (ctx.opts.json) {
      ctx.out.document({ command: ctx.command, ok: false, error: { code: err.code, message: msg, hint } });
    }
    ctx.out.error(`${ctx.out.color.red('error:')} ${msg}${hint ? `\n${ctx.out.color.dim('hint:')} ${hint}` : ''}`);
    return err.exitCode;
  }
  if ((err as { name?: string })?.name === 'ExitPromptError') {
    ctx.out.error('interrupted');
    return EXIT.interrupted;
  }
  const message = redactText(err instanceof Error ? err.message : String(err));
  if (ctx.opts.json) ctx.out.document({ command: ctx.command, ok: false, error: { code: 'INTERNAL', message } });
  ctx.out.error(`${ctx.out.color.red('unexpected error:')} ${message}`);
  if (ctx.opts.verbose && err instanceof Error && err.stack) ctx.out.error(redactText(err.stack));
  else ctx.out.error(hintFor('INTERNAL'));
  return EXIT.failed;
}
