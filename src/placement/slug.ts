import { UsageError } from '../errors.js';

const SLUG = /^[a-z][a-z0-9-]{0,39}$/;
const RESERVED = new Set(['public', 'information_schema', 'app', 'tenantctl', 'postgres', 'template0', 'template1']);

/**
 * A slug is the tenant's name on the command line and the root of its schema, database and role
 * names: lowercase letters, digits and hyphens, starting with a letter, at most 40 characters.
 * Returns the problem, or null when the slug is fine.
 */
export function slugProblem(slug: string): string | null {
  if (slug.length === 0) return 'is empty';
  if (slug.length > 40) return `is ${slug.length} characters long; the limit is 40`;
  if (!SLUG.test(slug)) {
    if (/^[0-9]/.test(slug)) return 'starts with a digit; it must start with a letter';
    if (/[A-Z]/.test(slug)) return 'has upper case letters; use lowercase';
    return 'may contain only lowercase letters, digits and hyphens, starting with a letter';
  }
  if (slug.endsWith('-') || slug.includes('--')) return 'has a trailing or doubled hyphen';
  if (RESERVED.has(slug) || slug.startsWith('pg-') || slug.startsWith('pg_')) return 'is a reserved name';
  return null;
}

/** Throws a usage error (exit 2) for a bad slug, showing it JSON-quoted so hidden characters show. */
export function assertSlug(slug: string): string {
  const problem = slugProblem(slug);
  if (problem) {
    throw new UsageError(
      'BAD_SLUG',
      `tenant slug ${JSON.stringify(slug)} ${problem}`,
      'use lowercase letters, digits and hyphens, starting with a letter, at most 40 characters (e.g. acme-corp)',
    );
  }
  return slug;
}
