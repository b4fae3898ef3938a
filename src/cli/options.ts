import { InvalidArgumentError, Option, type Command } from 'commander';
import { UsageError } from '../errors.js';
import { parseDurationMs } from '../config/duration.js';
import type { TenantSelector } from '../catalog/tenants.js';

/**
 * Shared flag definitions, so every command spells a selector the same way. An empty value or
 * item (`--tenant ""`, `--model pool,`) is refused (exit 2): it is most often an unset variable
 * (`--tenant "$SLUG"`), and read as "no filter" it would select the whole fleet.
 */
export const selectorList = (v: string, prev: string[] = []): string[] => {
  const items = v.split(',').map((s) => s.trim());
  if (items.some((s) => s === '')) {
    throw new InvalidArgumentError(
      'has an empty value (an unset variable?): name at least one, comma-separated with no empty item, or leave the option out to select every tenant',
    );
  }
  return [...prev, ...items];
};

export function addSelectorOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option('--tenant <slugs>', 'only these tenants (comma-separated)').argParser(selectorList))
    .addOption(new Option('--model <models>', 'pool, schema or database (comma-separated)').argParser(selectorList))
    .addOption(new Option('--region <regions>', 'only these regions').argParser(selectorList))
    .addOption(new Option('--shard <shards>', 'only these shards').argParser(selectorList))
    .addOption(new Option('--tier <tiers>', 'only these tiers').argParser(selectorList))
    .addOption(new Option('--status <statuses>', 'only tenants in these statuses').argParser(selectorList));
}

export function selectorFrom(opts: Record<string, unknown>): TenantSelector {
  return {
    tenants: opts.tenant as string[] | undefined,
    model: opts.model as string[] | undefined,
    region: opts.region as string[] | undefined,
    shard: opts.shard as string[] | undefined,
    tier: opts.tier as string[] | undefined,
    status: opts.status as string[] | undefined,
  };
}

/**
 * A positive integer flag. Commander prints an InvalidArgumentError with the flag's name and
 * exits 2 (see main.ts); for environment variables the same check throws a UsageError.
 */
export function positiveInt(flag: string) {
  const max = FLAG_MAX[flag] ?? Number.MAX_SAFE_INTEGER;
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) {
      if (flag.startsWith('--')) throw new InvalidArgumentError(`must be a positive whole number, e.g. ${flag} 8`);
      throw new UsageError('USAGE', `${flag} must be a positive whole number, got ${JSON.stringify(v)}`, `e.g. ${flag}=8`);
    }
    // 1e20 is a whole number to JavaScript, and out of range for the catalog's bigint run ids.
    if (n > max) {
      if (flag.startsWith('--')) throw new InvalidArgumentError(`must be at most ${max}, got ${v}`);
      throw new UsageError('USAGE', `${flag} must be at most ${max}, got ${JSON.stringify(v)}`, `e.g. ${flag}=8`);
    }
    return n;
  };
}

/** Upper bounds: concurrency as the config's `defaults.concurrency` allows; days as dates can count. */
const FLAG_MAX: Record<string, number> = { '--concurrency': 256, TENANTCTL_CONCURRENCY: 256, '--keep-days': 36_500 };

/** Flags, then TENANTCTL_* environment variables, then the config, then defaults. */
export function concurrencyFrom(flag: number | undefined, configDefault: number, env = process.env): number {
  if (flag !== undefined) return flag;
  if (env.TENANTCTL_CONCURRENCY) return positiveInt('TENANTCTL_CONCURRENCY')(env.TENANTCTL_CONCURRENCY);
  return configDefault;
}

/** `--lock-wait`, as `move` and `restore` spell it (src/copy/load-lock-wait.ts bounds the load by it). */
export function lockWaitOption(): Option {
  return new Option(
    '--lock-wait <duration>',
    "into a pool: how long the load waits for a lock another session holds on the pool's tables, e.g. 30s or 5min (default 30s)",
  );
}

/** A duration flag ('500ms', '30s', '5min') in milliseconds, undefined when not given; a bad one is BAD_INPUT naming the flag (exit 2). */
export function flagDuration(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const ms = parseDurationMs(value);
  if (!ms) throw new UsageError('BAD_INPUT', `${flag} ${value} is not a duration`, `write e.g. ${flag} 30s (ms, s or min, above 0)`);
  return ms;
}
