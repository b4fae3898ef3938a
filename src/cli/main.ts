import './node-navigator.js';
import { refuseRepeatedValues } from './repeated-options.js';
import { readFileSync } from 'node:fs';
import { Command, Option } from 'commander';
import { EXIT, TenantctlError } from '../errors.js';
import { argvErrorDocument, commanderMessage, wantsJson } from './argv-errors.js';
import { redactText } from '../config/redact.js';
import { registerConfigCommands } from './config-cmd.js';
import { registerDevCommands } from './dev-cmd.js';
import { registerTenantCommands } from './tenant-cmd.js';
import { registerResolveCommand } from './resolve-cmd.js';
import { registerDoctorCommand } from './doctor-cmd.js';
import { registerMigrateCommands } from './migrate-cmd.js';
import { registerAuditCommand } from './audit-cmd.js';
import { registerBackupCommands, registerRestoreCommand } from './backup-cmd.js';
import { registerMoveCommands } from './move-cmd.js';
import { registerTierCommands } from './tier-cmd.js';
import { registerUsageCommand } from './usage-cmd.js';
import { printManPage, registerCompletionCommands, wantsManPage } from './completion-cmd.js';
import { registerCatalogCommands } from './catalog-cmd.js';
import { registerPitrCommands } from './pitr-cmd.js';

/**
 * Wires the command groups. Each group file only declares flags and hands them to a core
 * function, imported lazily so that `tenantctl --help` loads almost nothing.
 */
/** The package's version; dist/cli/main.js and src/cli/main.ts both sit two folders below it. */
export function packageVersion(): string {
  return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
}

export function buildProgram(): Command {
  const program = new Command('tenantctl')
    .description('A control plane for multi-tenant PostgreSQL fleets')
    .version(packageVersion(), '-V, --version', 'print the version')
    .addHelpText('after', '\nExample:\n  tenantctl dev up && tenantctl tenant create acme --tier standard\n')
    .option('--config <file>', 'fleet config (default: $TENANTCTL_CONFIG, then ./tenants.config.yaml)')
    .option('--json', 'print one JSON document on stdout; progress goes to stderr')
    .option('--quiet', 'no progress output')
    .option('--no-color', 'no colours (NO_COLOR is honoured too)')
    .addOption(new Option('--verbose', 'stack traces for unexpected errors').hideHelp())
    .helpCommand('help [command]', 'display help for command (help --man: the man page)')
    .showSuggestionAfterError(true)
    .configureOutput({ writeOut: (s) => process.stdout.write(s), writeErr: (s) => process.stderr.write(s) })
    .exitOverride();
  registerDevCommands(program);
  registerConfigCommands(program);
  registerTenantCommands(program);
  registerMigrateCommands(program);
  registerResolveCommand(program);
  registerDoctorCommand(program);
  registerAuditCommand(program);
  registerBackupCommands(program);
  registerRestoreCommand(program);
  registerMoveCommands(program);
  registerTierCommands(program);
  registerUsageCommand(program);
  registerCompletionCommands(program, packageVersion);
  registerCatalogCommands(program);
  registerPitrCommands(program);
  refuseRepeatedValues(program);
  return program;
}

export async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  const json = wantsJson(argv.slice(2));
  // With --json, stdout carries one JSON document: commander's own output (the version) is held
  // back until we know whether it is the answer or an error.
  let held = '';
  if (json) program.configureOutput({ writeOut: (s) => void (held += s), writeErr: (s) => process.stderr.write(s) });
  const printJson = (doc: unknown) => process.stdout.write(`${JSON.stringify(doc, null, 2)}\n`);
  if (wantsManPage(argv.slice(2))) return printManPage(program, packageVersion());
  try {
    await program.parseAsync(argv);
  } catch (err) {
    const e = err as { code?: string; exitCode?: number; message?: string };
    if (e.code === 'commander.version' && json) {
      printJson({ command: 'version', ok: true, version: packageVersion() });
      process.exitCode = EXIT.ok;
    } else if (e.code === 'commander.help' && e.exitCode !== 0) {
      // No command (`tenantctl`, `tenantctl backup`): commander printed the help on stderr; a
      // script that forgot its verb must not pass, so it is a usage error (under --json, one
      // document on stdout says so, as every other usage error does).
      if (json) {
        const path = argvErrorDocument(program, argv.slice(2), 'USAGE', '').command;
        printJson(
          argvErrorDocument(
            program,
            argv.slice(2),
            'USAGE',
            `${path === 'tenantctl' ? 'a command' : `a subcommand of ${path}`} is missing`,
          ),
        );
      }
      process.exitCode = EXIT.usage;
    } else if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help') {
      process.stdout.write(held);
      process.exitCode = EXIT.ok;
    } else if (json && (err instanceof TenantctlError || typeof e.exitCode === 'number')) {
      // An argument error under --json: one document on stdout (commander also told stderr).
      if (err instanceof TenantctlError) printJson(argvErrorDocument(program, argv.slice(2), err.code, err.message, err.hint));
      else printJson(argvErrorDocument(program, argv.slice(2), 'USAGE', commanderMessage(e.message ?? String(err))));
      process.exitCode = EXIT.usage;
    } else if (err instanceof TenantctlError) {
      // Thrown while commander parsed the flags, before any command's own error handling.
      process.stderr.write(`error: ${redactText(err.message)}${err.hint ? `\nhint: ${redactText(err.hint)}` : ''}\n`);
      process.exitCode = err.exitCode;
    } else if (typeof e.exitCode === 'number') {
      // Commander already printed the usage problem; usage errors are exit 2, and say where the
      // flags are listed (as the JSON document's hint does) unless commander suggested a flag.
      if (e.exitCode !== 0 && !/\(Did you mean /.test(e.message ?? '')) {
        const path = argvErrorDocument(program, argv.slice(2), 'USAGE', '').command;
        process.stderr.write(`hint: see ${path === 'tenantctl' ? '' : 'tenantctl '}${path} --help\n`);
      }
      process.exitCode = e.exitCode === 0 ? EXIT.ok : EXIT.usage;
    } else {
      throw err;
    }
  }
}

// `tenantctl ... | head` closes our stdout early: that is the reader's choice, not an error.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(process.exitCode ?? EXIT.ok);
  throw err;
});

// bin/tenantctl's handler for the time the modules load gives way to this one.
const early = (globalThis as { __tenantctlEarlySignal?: (signal: NodeJS.Signals) => void }).__tenantctlEarlySignal;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  if (early) process.off(signal, early);
  process.on(signal, () => {
    // Commands that change things install their own handler (src/operations/interrupt.ts) and stop
    // at a clean point; elsewhere (reads: audit, usage, status, list; one-transaction writes) a
    // Ctrl-C or a job's SIGTERM means stop now: said on stderr, exit 130 for both (not 143, silent),
    // and with --json the one document says so too.
    if (process.listenerCount(signal) > 1) return;
    const message = `interrupted (${signal}): stopped before it finished`;
    const args = process.argv.slice(2);
    if (wantsJson(args))
      process.stdout.write(
        `${JSON.stringify(argvErrorDocument(buildProgram(), args, 'INTERRUPTED', message, 'run the same command again for all of it'), null, 2)}\n`,
      );
    process.stderr.write(`${message}; run the same command again for all of it\n`);
    process.exit(EXIT.interrupted);
  });
}

await main(process.argv);
