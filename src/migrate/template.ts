import type { Config } from '../config/types.js';
import { ident } from '../sql.js';

/**
 * Placeholders in .sql migrations, so that one file builds every target whatever the configured
 * tenant key. Substitution happens just before execution; the checksum is of the raw file, so a
 * config change never reads as drift.
 *
 * `{{tenant_key_column}}` becomes the quoted column name (`"tenant_id"`), `{{tenant_key_type}}`
 * the SQL type (`uuid`, `bigint` or `text`).
 *
 * @example
 *   renderSql('{{tenant_key_column}} {{tenant_key_type}} not null', templateVars(config))
 *   // '"tenant_id" uuid not null'
 */
export const PLACEHOLDERS = ['tenant_key_column', 'tenant_key_type'] as const;
export type Placeholder = (typeof PLACEHOLDERS)[number];
export type TemplateVars = Record<Placeholder, string>;

const PATTERN = /\{\{\s*([A-Za-z0-9_]+)\s*\}\}/g;

/** The values for the placeholders, from the config. */
export function templateVars(config: Pick<Config, 'tenantKey'>): TemplateVars {
  return {
    // Quoted: the column is validated as an identifier, and quoting also makes reserved words work.
    tenant_key_column: ident(config.tenantKey.column),
    // An enum in the config schema (uuid | bigint | text), never free text.
    tenant_key_type: config.tenantKey.type,
  };
}

/** Every placeholder name used in the text, in order of first appearance. */
export function placeholdersIn(text: string): string[] {
  const seen = new Set<string>();
  for (const m of text.matchAll(PATTERN)) seen.add(m[1]);
  return [...seen];
}

/** Placeholder names used in the text that tenantctl does not know. */
export function unknownPlaceholders(text: string): string[] {
  return placeholdersIn(text).filter((p) => !(PLACEHOLDERS as readonly string[]).includes(p));
}

/**
 * Substitute every placeholder. Throws on an unknown one (loadMigrations reports those earlier,
 * with the file name, so this is a programming error when it happens).
 */
export function renderSql(text: string, vars: TemplateVars): string {
  return text.replace(PATTERN, (_m, name: string) => {
    if (!Object.hasOwn(vars, name)) throw new Error(`unknown placeholder {{${name}}}`);
    return vars[name as Placeholder];
  });
}

/** Rendered SQL per migration file and placeholder values: a thousand targets render it once. */
const renderCache = new WeakMap<object, { vars: string; sql: string }>();

/** renderSql of a migration file's SQL, cached per file and placeholder values. */
export function rendered(m: { sql?: string }, vars: TemplateVars): string {
  const key = JSON.stringify(vars);
  const hit = renderCache.get(m);
  if (hit && hit.vars === key) return hit.sql;
  const sql = renderSql(m.sql ?? '', vars);
  renderCache.set(m, { vars: key, sql });
  return sql;
}
