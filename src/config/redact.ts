/**
 * Redaction of connection URLs. URLs are parsed, never regex-matched, so passwords with `@`, `:`,
 * `/`, `%` or quotes are found whatever they contain.
 *
 * @example
 *   redactUrl('postgres://app:s3cr%40t@db:5432/x') // 'postgres://app:***@db:5432/x'
 *
 * @module
 */
const secrets = new Set<string>();
/** The secrets longest first (so that a secret containing another is removed whole); rebuilt when one is added. */
let longestFirst: string[] | null = null;

export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    // libpq's other place for it (validation refuses it in the config; free text may still carry one).
    if (parsed.searchParams.has('password')) parsed.searchParams.set('password', '***');
    return parsed.toString();
  } catch {
    // Not a URL we can parse: hide all of it rather than guess where the secret is.
    return '<unparseable url redacted>';
  }
}

/** Remember a secret (a password from a URL or the config) so that free text can be scrubbed. */
export function registerSecret(secret: string | undefined): void {
  if (!secret || secret.length < 3) return;
  longestFirst = null;
  secrets.add(secret);
  try {
    const decoded = decodeURIComponent(secret);
    secrets.add(decoded);
    secrets.add(encodeURIComponent(decoded));
  } catch {
    /* a password that is not valid percent-encoding is stored as is */
  }
}

/** Register the password of a connection URL. */
export function registerUrlSecret(url: string): void {
  try {
    const parsed = new URL(url);
    registerSecret(parsed.password);
    registerSecret(parsed.searchParams.get('password') ?? undefined);
  } catch {
    /* unparseable URLs are reported by validation */
  }
}

/**
 * Scrub every registered secret, and any URL's password, from free text (error messages from
 * pg or child processes may quote a connection string).
 */
export function redactText(text: string): string {
  let out = text;
  // Sorted once, not per string: a document of 1,000 tenants scrubs thousands of strings.
  longestFirst ??= [...secrets].sort((a, b) => b.length - a.length);
  for (const s of longestFirst) if (out.includes(s)) out = out.split(s).join('***');
  // A URL ends at whitespace or a double quote, but not at a single quote: `'` is legal, unescaped,
  // in a percent-encoded password (encodeURIComponent and URL both leave it), so stopping there
  // would leave the rest of the password in the text. No URL scheme in the text: nothing to parse.
  if (!out.includes('postgres')) return out;
  return out.replace(/\b(postgres(?:ql)?:\/\/)[^\s"]*/g, (m) => redactUrl(m));
}

/** Deep-copy a JSON-like value with every string scrubbed. */
export function redactDeep<T>(value: T): T {
  if (typeof value === 'string') return redactText(value) as T;
  // A Date has no own keys: copied as an object it would print as {}. JSON wants the ISO string.
  if (value instanceof Date) return (Number.isNaN(value.getTime()) ? null : value.toISOString()) as T;
  if (Array.isArray(value)) return value.map((v) => redactDeep(v)) as T;
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      out[k] = /password|secret/i.test(k) && typeof v === 'string' ? '***' : redactDeep(v);
    }
    return out as T;
  }
  return value;
}

/**
 * `JSON.stringify(redactDeep(value), null, space)` without the deep copy: the scrubbing runs as
 * JSON.stringify's replacer (dates reach it already as ISO strings, or null when invalid), so a
 * large document (usage of 1,000 tenants) is walked once.
 */
export function redactedJson(value: unknown, space?: number): string {
  return JSON.stringify(value, (k, v) => (typeof v !== 'string' ? v : /password|secret/i.test(k) ? '***' : redactText(v)), space);
}
