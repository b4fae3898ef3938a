import { fillUrlTemplate } from './url-template.js';

/**
 * `${VAR}` and `${VAR:-default}` in config strings, read from the environment. Every missing
 * variable is collected so validation can report all of them at once. In a connection URL
 * (`catalog.url`, a shard's `url`) each value is percent-encoded for the part it lands in (see
 * url-template.ts).
 */
export interface InterpolationProblem {
  path: string;
  variable: string;
  /** Set when the variable has a value that cannot be used there; unset means "not set". */
  reason?: string;
}

const PATTERN = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

/** Config keys holding a connection URL. */
const URL_KEY = /^(catalog\.url|regions\.[^.]+\.shards\.[^.]+\.url)$/;

/** Deeper than any valid config: a hostile file must not exhaust the stack. */
export const MAX_DEPTH = 32;

export function interpolate(value: unknown, env: NodeJS.ProcessEnv, problems: InterpolationProblem[], path = '', depth = 0): unknown {
  if (depth > MAX_DEPTH) {
    problems.push({ path: path || '(root)', variable: '', reason: `nested more than ${MAX_DEPTH} levels deep` });
    return undefined;
  }
  if (typeof value === 'string') {
    if (URL_KEY.test(path)) {
      const filled = fillUrlTemplate(value, (name) => env[name]);
      for (const p of filled.problems) problems.push({ path, ...p });
      return filled.url;
    }
    return value.replace(PATTERN, (_m, name: string, fallback: string | undefined) => {
      const v = env[name];
      if (v !== undefined && v !== '') return v;
      if (fallback !== undefined) return fallback;
      problems.push({ path: path || '(root)', variable: name });
      return '';
    });
  }
  if (Array.isArray(value)) return value.map((v, i) => interpolate(v, env, problems, `${path}[${i}]`, depth + 1));
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = interpolate(v, env, problems, path ? `${path}.${k}` : k, depth + 1);
    return out;
  }
  return value;
}
