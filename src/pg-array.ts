/**
 * Array parameters as PostgreSQL's array text, built here instead of by pg: pg serializes a JS
 * array element by element (a function call, a type check and a regular expression for each),
 * which at 5,000 targets was 50 ms of the node CPU before a `migrate up` could start its first
 * target (7 column arrays of the run's targets, bench/README.md), and about as much again for the
 * catalog writer's batches. The text is the same as pg's: every element quoted, `\` and `"`
 * escaped, null as NULL, so any text (quotes, backslashes, commas, braces, the word NULL) stays
 * itself. Passed as one text parameter and cast in the statement (`$1::text[]`).
 */

/** Characters an element must escape inside its double quotes. */
const ESCAPED = /[\\"]/g;
const NEEDS_ESCAPE = /[\\"]/;

function quoted(v: string): string {
  return NEEDS_ESCAPE.test(v) ? `"${v.replace(ESCAPED, '\\$&')}"` : `"${v}"`;
}

/**
 * A text[] literal of `values`: one element of a text[] column passed as an array of such
 * literals and cast back per row (`x.col::text[]`), since `unnest` of a 2-D array flattens it.
 */
export function textArrayLiteral(values: readonly string[]): string {
  return textArrayParam(values);
}

/** A text[] (or any array of a type read from text: timestamptz[], jsonb as text) parameter; null elements are NULL. */
export function textArrayParam(values: readonly (string | null)[]): string {
  let out = '{';
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    out += (i === 0 ? '' : ',') + (v === null ? 'NULL' : quoted(v));
  }
  return `${out}}`;
}

/** An int[] parameter of integers (null elements are NULL). */
export function intArrayParam(values: readonly (number | null)[]): string {
  let out = '{';
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v !== null && !Number.isInteger(v)) throw new Error(`not an integer: ${v}`);
    out += (i === 0 ? '' : ',') + (v === null ? 'NULL' : String(v));
  }
  return `${out}}`;
}
