import type { Command } from 'commander';
import { redactText, redactDeep } from '../config/redact.js';

/**
 * Errors found while commander reads the command line (unknown flag or command, missing
 * argument, bad value) happen before any command runs, so `action()` never sees them. With
 * --json they must still be exactly one JSON document on stdout, like every other error.
 */

/** --json anywhere before a `--` that ends the options. */
export function wantsJson(argv: string[]): boolean {
  const end = argv.indexOf('--');
  return (end === -1 ? argv : argv.slice(0, end)).includes('--json');
}

/**
 * The command the user meant, as far as the words name one (`tenant list` for
 * `tenantctl --config f tenant list --bogus`), for the `command` field and the hint.
 */
export function commandPath(program: Command, args: string[]): string[] {
  const path: string[] = [];
  let cmd = program;
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === '--') break;
    if (a.startsWith('-')) {
      // Options that take a value: skip the value too (only global ones matter before the command).
      if (a === '--config' && !a.includes('=')) i++;
      continue;
    }
    const sub = cmd.commands.find((c) => c.name() === a || c.aliases().includes(a));
    if (!sub) break;
    path.push(sub.name());
    cmd = sub;
  }
  return path;
}

/** Commander's message without its `error: ` prefix, on one line. */
export function commanderMessage(message: string): string {
  return message.replace(/^error: /, '').trim();
}

export function argvErrorDocument(program: Command, args: string[], code: string, message: string, hint?: string) {
  const path = commandPath(program, args);
  // Commander appends its suggestion to the message: in JSON it is the hint.
  const suggestion = /\n?\(Did you mean (.+)\?\)$/.exec(message);
  if (suggestion) {
    message = message.slice(0, suggestion.index);
    hint ??= `did you mean ${suggestion[1]}? see tenantctl ${[...path, '--help'].join(' ')}`;
  }
  return redactDeep({
    command: path.join(' ') || 'tenantctl',
    ok: false,
    error: { code, message: redactText(message), hint: hint ?? `see tenantctl ${[...path, '--help'].join(' ')}` },
  });
}
