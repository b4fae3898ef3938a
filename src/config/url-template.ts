/**
 * `${VAR}` inside a connection URL. A variable's value is pasted in encoded for the part of the URL
 * it lands in, so a password such as `S3cr@t:/%x` stays the password instead of moving the host:
 * the userinfo (user, password), path (database) and query get `encodeURIComponent`; the host and
 * port get the value as is, and one with characters a host cannot hold is refused. A variable
 * that is the whole URL, or comes before `://`, is pasted as is (it must already be a URL).
 *
 * @example
 *   fillUrlTemplate('postgres://app:${PW}@db:5432/postgres', (v) => ({ PW: 'S3cr@t:/%x' })[v])
 *   // { url: 'postgres://app:S3cr%40t%3A%2F%25x@db:5432/postgres', problems: [] }
 */
export interface UrlTemplateProblem {
  variable: string;
  /** Why the value cannot go where it lands; undefined when the variable is unset. */
  reason?: string;
}

type Part = 'raw' | 'userinfo' | 'host' | 'encoded';

const PATTERN = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;
/** Stands for a variable while the template's shape is read; never part of a config URL. */
const MARK = '\u0000';

export function fillUrlTemplate(
  template: string,
  lookup: (variable: string) => string | undefined,
): { url: string; problems: UrlTemplateProblem[] } {
  const vars = [...template.matchAll(PATTERN)];
  if (vars.length === 0) return { url: template, problems: [] };
  const parts = partsOfMarks(template.replace(PATTERN, MARK));
  const problems: UrlTemplateProblem[] = [];
  let i = 0;
  const url = template.replace(PATTERN, (_m, name: string, fallback: string | undefined) => {
    const part = parts[i++];
    const set = lookup(name);
    const value = set !== undefined && set !== '' ? set : fallback;
    if (value === undefined) {
      problems.push({ variable: name });
      return '';
    }
    if (part === 'userinfo' || part === 'encoded') return encodeURIComponent(value);
    if (part === 'host' && /[@/?#\s\\]/.test(value)) {
      problems.push({
        variable: name,
        reason:
          'lands in the host:port of the URL but holds characters a host cannot have; put only the host (or port) in it, or the whole URL in one variable (url: ${VAR})',
      });
      return '';
    }
    return value;
  });
  return { url, problems };
}

/** For each MARK in the skeleton, in order, the URL part it lands in. */
function partsOfMarks(skeleton: string): Part[] {
  const schemeEnd = skeleton.indexOf('://');
  const authorityStart = schemeEnd < 0 ? Infinity : schemeEnd + 3;
  let authorityEnd = skeleton.length;
  for (const ch of ['/', '?', '#']) {
    const at = skeleton.indexOf(ch, authorityStart === Infinity ? skeleton.length : authorityStart);
    if (at >= 0) authorityEnd = Math.min(authorityEnd, at);
  }
  // The userinfo ends at the authority's last literal `@` (a value's `@` is encoded, so only the
  // template's own `@` counts); without one there is no userinfo.
  const at = skeleton.lastIndexOf('@', authorityEnd - 1);
  const userinfoEnd = Math.max(at, authorityStart);
  const parts: Part[] = [];
  for (let pos = skeleton.indexOf(MARK); pos >= 0; pos = skeleton.indexOf(MARK, pos + 1)) {
    if (pos < authorityStart) parts.push('raw');
    else if (pos < userinfoEnd) parts.push('userinfo');
    else if (pos < authorityEnd) parts.push('host');
    else parts.push('encoded');
  }
  return parts;
}
