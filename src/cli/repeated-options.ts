import type { Command, Option } from 'commander';
import { redactText } from '../config/redact.js';
import { selectorList } from './options.js';

/**
 * A value flag given twice (`--partition 1/2 --partition 2/2`, `--tier free --tier pro`) is
 * refused, exit 2: commander keeps the last value without a word, and a script that built its
 * command line from two sources would run with one of them silently dropped. Flags that add up
 * (the selectors: `--tenant a --tenant b` is `--tenant a,b`) and switches (`--yes --yes`) may
 * repeat.
 */
export function refuseRepeatedValues(program: Command): void {
  const walk = (cmd: Command) => {
    for (const opt of cmd.options) if (takesOneValue(opt)) watch(cmd, opt);
    for (const sub of cmd.commands) walk(sub);
  };
  walk(program);
}

function takesOneValue(opt: Option): boolean {
  return (opt.required || opt.optional) && !opt.variadic && opt.parseArg !== selectorList;
}

function watch(cmd: Command, opt: Option): void {
  const seen: string[] = [];
  // Commander emits `option:<name>` once per occurrence on the command line (not for defaults or the environment).
  cmd.on(`option:${opt.name()}`, (value: unknown) => {
    seen.push(String(value ?? ''));
    if (seen.length < 2) return;
    const flag = opt.long ?? opt.short ?? opt.flags;
    cmd.error(
      `error: option '${opt.flags}' was given ${seen.length} times (${redactText(seen.map((v) => JSON.stringify(v)).join(', '))}); it takes one value: give ${flag} once`,
      { exitCode: 2, code: 'commander.optionRepeated' },
    );
  });
}
