import { Argument, type Command } from 'commander';
import { DYNAMIC_KINDS, type DynamicKind } from '../completion/spec.js';

/** The program a subcommand belongs to. */
function rootOf(cmd: Command): Command {
  let c = cmd;
  while (c.parent) c = c.parent;
  return c;
}

/**
 * `completion bash|zsh|fish` prints a script made from the program itself; the hidden
 * `__complete <kind>` is what those scripts call for slugs, shards, regions and tiers. It never
 * fails: no config, a bad one, or a catalog down prints nothing and exits 0, within a second or so.
 */
export function registerCompletionCommands(program: Command, version: () => string): void {
  program
    .command('completion')
    .description('print a shell completion script (commands, flags; slugs, shards, regions and tiers when a catalog answers)')
    .addArgument(new Argument('<shell>').choices(['bash', 'zsh', 'fish']))
    .addHelpText(
      'after',
      '\nExamples:\n  source <(tenantctl completion bash)                              # in ~/.bashrc\n' +
        '  source <(tenantctl completion zsh)                               # in ~/.zshrc\n' +
        '  tenantctl completion fish > ~/.config/fish/completions/tenantctl.fish\n',
    )
    .action(async (shell: 'bash' | 'zsh' | 'fish', _opts: unknown, cmd: Command) => {
      const { commandSpecs } = await import('../completion/spec.js');
      const specs = commandSpecs(rootOf(cmd));
      const render = {
        bash: async () => (await import('../completion/bash.js')).bashScript,
        zsh: async () => (await import('../completion/zsh.js')).zshScript,
        fish: async () => (await import('../completion/fish.js')).fishScript,
      }[shell];
      process.stdout.write((await render())(specs, version()));
    });

  program
    .command('__complete <kind>', { hidden: true })
    .description('words for shell completion: slugs, shards, regions or tiers (one a line; nothing when unknown)')
    .action(async (kind: string, _opts: unknown, cmd: Command) => {
      if (!(DYNAMIC_KINDS as readonly string[]).includes(kind)) return;
      const { completionWords, completeTimeoutMs } = await import('../completion/values.js');
      // Whatever the catalog does (the connect and the query have their own timeouts), a Tab
      // must come back.
      setTimeout(() => process.exit(0), 2 * completeTimeoutMs() + 500).unref();
      const words = await completionWords(kind as DynamicKind, { config: cmd.optsWithGlobals().config as string | undefined }).catch(
        () => [],
      );
      if (words.length) process.stdout.write(`${words.join('\n')}\n`);
    });
}

/** `tenantctl help --man`: commander's help command takes no flags of its own, so main asks first. */
export function wantsManPage(args: string[]): boolean {
  return args[0] === 'help' && args.includes('--man');
}

export async function printManPage(program: Command, version: string): Promise<void> {
  const { manPage } = await import('../completion/man.js');
  process.stdout.write(manPage(program, version));
}
