import type { Argument, Command, Option } from 'commander';

/**
 * What a shell needs to complete tenantctl, read off the commander program (never a list kept by
 * hand, so a new command or flag is completed the day it is added). Values are a fixed list
 * (choices, models, shells) or a dynamic kind the scripts ask `tenantctl __complete <kind>` for.
 */
export const DYNAMIC_KINDS = ['slugs', 'shards', 'regions', 'tiers'] as const;
export type DynamicKind = (typeof DYNAMIC_KINDS)[number];

/** A flag's or argument's values: nothing to offer, files, a dynamic kind, or fixed words. */
export type Values = { kind: 'none' } | { kind: 'files' } | { kind: 'dynamic'; of: DynamicKind } | { kind: 'words'; words: string[] };

export interface FlagSpec {
  /** Every spelling: `--tenant`, `-h`. */
  names: string[];
  description: string;
  /** Undefined for a boolean flag. */
  values?: Values;
  /** A flag of the program itself, accepted after any command. */
  global?: boolean;
}

export interface CommandSpec {
  /** Words after `tenantctl`: `[]`, `['tenant', 'create']`. */
  path: string[];
  description: string;
  subcommands: { name: string; description: string }[];
  flags: FlagSpec[];
  /** Per positional argument; the last one repeats when variadic. */
  args: { name: string; values: Values; variadic: boolean }[];
}

const MODELS = ['pool', 'schema', 'database'];
const STATUSES = ['provisioning', 'active', 'suspended', 'failed', 'deleting', 'moving'];

/** Values by a flag's or argument's name: `--to-shard` → shards, `<slugs...>` → slugs. */
function valuesByName(name: string, choices: readonly string[] | undefined): Values {
  if (choices?.length) return { kind: 'words', words: [...choices] };
  const n = name.replace(/^-+/, '');
  // A name for something that does not exist yet (`[new-slug]`): nothing to offer.
  if (n.startsWith('new-')) return { kind: 'none' };
  if (/(^|-)(tenants?|slugs?)$/.test(n)) return { kind: 'dynamic', of: 'slugs' };
  if (/(^|-)shards?$/.test(n)) return { kind: 'dynamic', of: 'shards' };
  if (/(^|-)regions?$/.test(n)) return { kind: 'dynamic', of: 'regions' };
  if (/(^|-)tiers?$/.test(n)) return { kind: 'dynamic', of: 'tiers' };
  if (/(^|-)models?$/.test(n)) return { kind: 'words', words: MODELS };
  if (/(^|-)status(es)?$/.test(n)) return { kind: 'words', words: STATUSES };
  if (/(^|-)(config|file|dir)$/.test(n)) return { kind: 'files' };
  return { kind: 'none' };
}

function flagSpec(o: Option): FlagSpec {
  const names = [o.long, o.short].filter((x): x is string => Boolean(x));
  const takesValue = o.required || o.optional;
  return { names, description: o.description, values: takesValue ? valuesByName(o.long ?? '', o.argChoices) : undefined };
}

/** `tenant create`'s slug names a tenant that does not exist yet: nothing to offer. */
function argSpec(cmd: Command, a: Argument) {
  const isNew = cmd.name() === 'create' && cmd.parent?.name() === 'tenant';
  const values: Values = isNew ? { kind: 'none' } : valuesByName(a.name(), a.argChoices);
  return { name: a.name(), values, variadic: a.variadic };
}

/**
 * Every visible command of the program, depth first, with the program's own (global) flags added
 * to each: commander accepts them after the subcommand too.
 *
 * @example
 *   commandSpecs(buildProgram()).find((c) => c.path.join(' ') === 'tenant show')?.args; // [{ name: 'slug', values: { kind: 'dynamic', of: 'slugs' }, … }]
 */
export function commandSpecs(program: Command): CommandSpec[] {
  const help = program.createHelp();
  // --version (and -V) only work on the program itself.
  const globals = help
    .visibleOptions(program)
    .filter((o) => o.long !== '--version')
    .map((o) => ({ ...flagSpec(o), global: true }));
  const version = help
    .visibleOptions(program)
    .filter((o) => o.long === '--version')
    .map(flagSpec);
  const out: CommandSpec[] = [];
  const walk = (cmd: Command, path: string[]) => {
    const subs = help.visibleCommands(cmd).filter((c) => c.name() !== 'help');
    const own = path.length ? help.visibleOptions(cmd).map(flagSpec) : [];
    const seen = new Set(own.flatMap((f) => f.names));
    out.push({
      path,
      description: cmd.description(),
      subcommands: subs.map((c) => ({ name: c.name(), description: c.description() })),
      flags: [...own, ...globals.filter((g) => !g.names.some((n) => seen.has(n))), ...(path.length ? [] : version)],
      args: cmd.registeredArguments.map((a) => argSpec(cmd, a)),
    });
    for (const sub of subs) walk(sub, [...path, sub.name()]);
  };
  walk(program, []);
  return out;
}
