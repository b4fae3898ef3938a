import { readFileSync, existsSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { UsageError } from '../errors.js';
import { parseDurationMs } from './duration.js';
import { fleetProblems } from './fleet-checks.js';
import { interpolate, type InterpolationProblem } from './interpolate.js';
import { assertConfigSize, readYaml } from './read-yaml.js';
import { registerSecret, registerUrlSecret, redactText } from './redact.js';
import { configSchema } from './schema.js';
import type { Config, Shard } from './types.js';
import { urlFromParts } from './url-from-parts.js';

/** A pgBackRest option whose value is a secret (not `repo1-s3-key-type`, whose value is a word). */
const PGBACKREST_SECRET = /-(pass|key|key-secret|secret|token)$/;

/** Enough to fix a config; a hostile file must not produce a message of megabytes. */
const MAX_LISTED_PROBLEMS = 30;
const MAX_LISTED_KEYS = 10;

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
  const st = statSync(file);
  if (!st.isFile()) {
    throw new UsageError(
      'CONFIG_NOT_FOUND',
      `config ${file} is ${st.isDirectory() ? 'a directory' : 'not a regular file'}, not a config file`,
      'pass --config with the file itself (e.g. --config ./tenants.config.yaml), or set TENANTCTL_CONFIG to it',
    );
  }
  // Before reading it: a huge file is refused without holding it in memory.
  assertConfigSize(st.size, file);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new UsageError(
      'CONFIG_NOT_FOUND',
      `config ${file} cannot be read: ${(err as Error).message}`,
      'check the file is readable by this user (or pass another with --config)',
    );
  }
  return parseConfig(text, file, env);
}

export function parseConfig(text: string, file: string, env: NodeJS.ProcessEnv = process.env): Config {
  const doc = readYaml(text, file);
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) {
    throw new UsageError('CONFIG_INVALID', `${file} must be a YAML mapping`, 'see the config reference in README.md');
  }
  const problems: InterpolationProblem[] = [];
  const interpolated = interpolate(doc, env, problems);
  const messages = problems.map((p) =>
    p.reason
      ? `${p.path}: ${p.variable ? `\${${p.variable}} ` : ''}${p.reason}`
      : `${p.path}: \${${p.variable}} is not set and has no default (set it, or write \${${p.variable}:-default})`,
  );
  const parsed = configSchema.safeParse(interpolated);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      const path = issue.path.map(String).join('.') || '(root)';
      // A missing ${VAR} left the value empty; "required" or "must be a URL" on top would report
      // one problem three times.
      if (problems.some((p) => p.path === path)) continue;
      let msg = issue.message;
      if (issue.code === 'unrecognized_keys')
        msg = `unknown key(s) ${listed(
          issue.keys.map((k) => `"${k}"`),
          MAX_LISTED_KEYS,
        )}`;
      else if (issue.code === 'invalid_type' && /received undefined/.test(issue.message)) msg = 'required';
      messages.push(`${path}: ${msg}`);
    }
  }
  if (messages.length > 0) throw invalid(file, messages);
  const raw = parsed.data!;
  const shards: Shard[] = [];
  for (const [region, r] of Object.entries(raw.regions)) {
    for (const [name, s] of Object.entries(r.shards)) {
      // Parts become a URL here, once: everything downstream connects with shard.url.
      if (s.url === undefined) {
        registerSecret(s.password);
        s.url = urlFromParts({ host: s.host!, port: s.port, user: s.user, password: s.password, database: s.database });
      }
      registerUrlSecret(s.url);
      shards.push({ ...s, url: s.url, name, region, residency: r.residency });
    }
  }
  const catalog = raw.catalog;
  registerSecret(catalog.password);
  if (catalog.host !== undefined) {
    catalog.url = urlFromParts({
      host: catalog.host,
      port: catalog.port,
      user: catalog.user,
      password: catalog.password,
      database: catalog.database,
    });
  }
  if (catalog.url) registerUrlSecret(catalog.url);
  registerSecret(raw.servingRole.password);
  // pgBackRest's own secrets, written among its options (repo1-cipher-pass, repo1-s3-key,
  // repo1-s3-key-secret, repo1-azure-key, repo1-s3-token): scrubbed from every output, `config show` too.
  for (const r of Object.values(raw.regions))
    for (const [name, value] of Object.entries(r.pitr?.options ?? {})) if (PGBACKREST_SECRET.test(name)) registerSecret(String(value));
  const baseDir = dirname(file);
  let catalogUrl = catalog.url;
  if (!catalogUrl) {
    const shard = shards.find((s) => s.name === catalog.shard)!;
    const u = new URL(shard.url);
    u.pathname = `/${catalog.database}`;
    catalogUrl = u.toString();
  }
  const crossKey = fleetProblems({ catalog, catalogUrl }, shards);
  if (crossKey.length > 0) throw invalid(file, crossKey);
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

function invalid(file: string, messages: string[]): UsageError {
  return new UsageError(
    'CONFIG_INVALID',
    `${file} has ${messages.length} problem(s):\n  ${listed(messages.map(redactText), MAX_LISTED_PROBLEMS, '\n  ')}`,
    'fix each listed key; see the config reference in README.md',
  );
}

/** The first `max` items, and how many more there are. */
function listed(items: string[], max: number, sep = ', '): string {
  const shown = items.slice(0, max).join(sep);
  return items.length > max ? `${shown}${sep}… and ${items.length - max} more` : shown;
}

/** Parse a duration from the config ('5s', '500ms', '2min') into milliseconds. */
export function durationMs(value: string): number {
  const ms = parseDurationMs(value);
  if (ms === undefined) throw new UsageError('CONFIG_INVALID', `bad duration "${value}"`, 'write 500ms, 5s or 2min');
  return ms;
}
