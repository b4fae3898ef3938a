import { readFileSync, existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parse, YAMLParseError } from 'yaml';
import { UsageError } from '../errors.js';
import { interpolate, type InterpolationProblem } from './interpolate.js';
import { registerSecret, registerUrlSecret, redactText } from './redact.js';
import { configSchema } from './schema.js';
import type { Config, Shard } from './types.js';

export interface LoadOptions {
  /** --config flag */
  file?: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

/** Which file: --config, then TENANTCTL_CONFIG, then ./tenants.config.yaml. */
export function configPath(opts: LoadOptions = {}): string {
  const env = opts.env ?? process.env;
  const cwd = opts.cwd ?? process.cwd();
  return resolve(cwd, opts.file ?? env.TENANTCTL_CONFIG ?? 'tenants.config.yaml');
}

/**
 * Load, interpolate and validate the config in one pass; every problem is reported in one
 * message with its path.
 *
 * @example
 *   const config = loadConfig({ file: 'tenants.config.yaml' });
 */
export function loadConfig(opts: LoadOptions = {}): Config {
  const env = opts.env ?? process.env;
  const file = configPath(opts);
  if (!existsSync(file)) {
    throw new UsageError(
      'CONFIG_NOT_FOUND',
      `config file not found: ${file}`,
      'pass --config FILE, set TENANTCTL_CONFIG, or run from a folder with tenants.config.yaml',
    );
  }
  return parseConfig(readFileSync(file, 'utf8'), file, env);
}

export function parseConfig(text: string, file: string, env: NodeJS.ProcessEnv = process.env): Config {
  let doc: unknown;
  try {
    doc = parse(text, { prettyErrors: true });
  } catch (err) {
    const detail = err instanceof YAMLParseError ? err.message.split('\n')[0] : String(err);
    throw new UsageError('CONFIG_YAML', `${file} is not valid YAML: ${redactText(detail)}`, 'fix the YAML syntax at that line');
  }
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) {
    throw new UsageError('CONFIG_INVALID', `${file} must be a YAML mapping`, 'see the config reference in README.md');
  }
  const problems: InterpolationProblem[] = [];
  const interpolated = interpolate(doc, env, problems);
  const messages = problems.map(
    (p) => `${p.path}: \${${p.variable}} is not set and has no default (set it, or write \${${p.variable}:-default})`,
  );
  const parsed = configSchema.safeParse(interpolated);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      const path = issue.path.map(String).join('.') || '(root)';
      // A missing ${VAR} left the value empty; "required" or "must be a URL" on top would report
      // one problem three times.
      if (problems.some((p) => p.path === path)) continue;
      let msg = issue.message;
      if (issue.code === 'unrecognized_keys') msg = `unknown key(s) ${issue.keys.map((k) => `"${k}"`).join(', ')}`;
      else if (issue.code === 'invalid_type' && /received undefined/.test(issue.message)) msg = 'required';
      messages.push(`${path}: ${msg}`);
    }
  }
  if (messages.length > 0) {
    throw new UsageError(
      'CONFIG_INVALID',
      `${file} has ${messages.length} problem(s):\n  ${messages.map(redactText).join('\n  ')}`,
      'fix each listed key; see the config reference in README.md',
    );
  }
  const raw = parsed.data!;
  const shards: Shard[] = [];
  for (const [region, r] of Object.entries(raw.regions)) {
    for (const [name, s] of Object.entries(r.shards)) {
      registerUrlSecret(s.url);
      shards.push({ ...s, name, region, residency: r.residency });
    }
  }
  if (raw.catalog.url) registerUrlSecret(raw.catalog.url);
  registerSecret(raw.servingRole.password);
  const baseDir = dirname(file);
  let catalogUrl = raw.catalog.url;
  if (!catalogUrl) {
    const shard = shards.find((s) => s.name === raw.catalog.shard)!;
    const u = new URL(shard.url);
    u.pathname = `/${raw.catalog.database}`;
    catalogUrl = u.toString();
  }
  return {
    ...raw,
    file,
    baseDir,
    shards,
    catalogUrl,
    defaultRegion: raw.defaults.region ?? Object.keys(raw.regions)[0],
    defaultTier: raw.defaults.tier ?? Object.keys(raw.tiers)[0],
    migrationsDir: resolve(baseDir, raw.migrations.dir),
  };
}

/** Parse a duration from the config ('5s', '500ms', '2min') into milliseconds. */
export function durationMs(value: string): number {
  const m = /^(\d+)(ms|s|min)$/.exec(value);
  if (!m) throw new UsageError('CONFIG_INVALID', `bad duration "${value}"`, 'write 500ms, 5s or 2min');
  const n = Number(m[1]);
  return m[2] === 'ms' ? n : m[2] === 's' ? n * 1000 : n * 60_000;
}
