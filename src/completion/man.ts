import type { EventEmitter } from 'node:events';
import type { Command } from 'commander';
import { commandSpecs, type FlagSpec } from './spec.js';

/** roff-safe text: backslashes, hyphens, and a leading dot or quote that would read as a request. */
function roff(text: string): string {
  return text
    .replace(/\\/g, '\\e')
    .replace(/-/g, '\\-')
    .split('\n')
    .map((l) => (/^[.']/.test(l) ? `\\&${l}` : l))
    .join('\n');
}

/** What `addHelpText('after', …)` prints for a command (its examples), as commander emits it. */
function afterHelp(cmd: Command): string {
  let text = '';
  // A commander Command is an EventEmitter (its typings do not say so); the help texts are listeners.
  (cmd as unknown as EventEmitter).emit('afterHelp', { error: false, command: cmd, write: (s: string) => void (text += s) });
  return text.trim();
}

function flagItem(f: FlagSpec, usage: string): string {
  return `.TP\n.B ${roff(usage)}\n${roff(f.description)}`;
}

/**
 * The man page (roff, section 1), generated from the commander program: every visible command
 * with its usage, description, flags and examples; the exit codes and environment. `npm run
 * build` writes it to man/tenantctl.1 (package.json's `man`); `tenantctl help --man` prints it.
 *
 * @example
 *   process.stdout.write(manPage(buildProgram(), '0.1.0'));
 */
export function manPage(program: Command, version: string): string {
  const help = program.createHelp();
  const byPath = new Map<string, Command>();
  const walk = (cmd: Command, path: string[]) => {
    byPath.set(path.join(' '), cmd);
    for (const sub of help.visibleCommands(cmd)) if (sub.name() !== 'help') walk(sub, [...path, sub.name()]);
  };
  walk(program, []);
  const usageOf = (cmd: Command) => new Map(help.visibleOptions(cmd).map((o) => [o.long ?? o.short, help.optionTerm(o)]));
  const globals = usageOf(program);
  const out: string[] = [
    `.TH TENANTCTL 1 "" "tenantctl ${version}" "User Commands"`,
    '.SH NAME',
    `tenantctl \\- ${roff(program.description())}`,
    '.SH SYNOPSIS',
    '.B tenantctl',
    '[\\fIglobal options\\fR] \\fIcommand\\fR [\\fIoptions\\fR] [\\fIarguments\\fR]',
    '.SH DESCRIPTION',
    roff(
      'tenantctl provisions tenants in pool, schema or database isolation, migrates them, audits their isolation, backs them up, restores and moves them, recording every placement in its catalog. Commands run from flags alone off a terminal; destructive ones need --yes there.',
    ),
    '.SH GLOBAL OPTIONS',
  ];
  const specs = commandSpecs(program);
  const root = specs.find((s) => s.path.length === 0)!;
  for (const f of root.flags) out.push(flagItem(f, globals.get(f.names[0]) ?? f.names.join(', ')));
  out.push('.SH COMMANDS');
  for (const s of specs.filter((x) => x.path.length > 0)) {
    const cmd = byPath.get(s.path.join(' '))!;
    const usage = `tenantctl ${s.path.slice(0, -1).join(' ')}${s.path.length > 1 ? ' ' : ''}${cmd.name()} ${cmd.usage()}`;
    out.push(`.SS "${roff(usage).replace(/"/g, '\\(dq')}"`, roff(s.description));
    const own = usageOf(cmd);
    for (const f of s.flags)
      if (!globals.has(f.names[0]) && f.names[0] !== '--help') out.push(flagItem(f, own.get(f.names[0]) ?? f.names[0]));
    const examples = afterHelp(cmd);
    if (examples) out.push('.PP', '.nf', roff(examples), '.fi');
  }
  out.push(
    '.SH EXIT STATUS',
    '.TP\n.B 0\ndone',
    '.TP\n.B 1\nthe operation failed for at least one tenant (or a doctor check failed, or audit found something at or above \\-\\-fail\\-on, or dev status found a shard not running)',
    '.TP\n.B 2\nusage, configuration or refused input; nothing was changed (also: no command given)',
    '.TP\n.B 3\nanother run holds the lock (the message names the holder); \\-\\-wait waits instead',
    '.TP\n.B 130\ninterrupted',
    '.SH ENVIRONMENT',
    '.TP\n.B TENANTCTL_CONFIG\nthe fleet config when \\-\\-config is not given (then ./tenants.config.yaml)',
    '.TP\n.B TENANTCTL_CONCURRENCY\ndefault width of fan\\-outs when \\-\\-concurrency is not given',
    '.TP\n.B TENANTCTL_BACKUP_KEY\nthe master key of encrypted backups',
    '.TP\n.B NO_COLOR\nno colours',
    '.SH FILES',
    '.TP\n.I tenants.config.yaml\nthe fleet config: shards, regions, tiers, the catalog, migrations',
    '.SH SEE ALSO',
    roff('tenantctl completion bash|zsh|fish; README.md and docs/architecture.md of the package.'),
  );
  return `${out.join('\n')}\n`;
}
