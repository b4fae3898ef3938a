/**
 * Control characters in data (a tenant name with a newline, an ESC that would recolour or clear
 * the operator's terminal, a bidi override that reverses text) are shown escaped, never sent raw
 * to a terminal or into a tab-separated line. JSON needs none of this: JSON.stringify escapes them.
 *
 * @example
 *   escapeControl('acme\n\x1b[2J') // 'acme\\n\\x1b[2J'
 */
// C0, DEL, C1, and the invisible direction marks and overrides (U+200E/F, U+202A-E, U+2066-9),
// line and paragraph separators.
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;
const NAMED: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

export function escapeControl(text: string): string {
  return text.replace(CONTROL, (c) => {
    const named = NAMED[c];
    if (named) return named;
    const code = c.charCodeAt(0);
    return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
  });
}

/**
 * Text that tenantctl styled itself (a coloured `ok`): trusted, so tables pass it through as is.
 * Every other cell is escaped.
 */
export class Styled {
  constructor(readonly text: string) {}
}

export function styled(text: string): Styled {
  return new Styled(text);
}
