/**
 * A text[] literal of `values`: one element of a text[] column passed as an array of such
 * literals and cast back per row (`x.col::text[]`), since `unnest` of a 2-D array flattens it.
 * Every element is quoted, so any text (quotes, backslashes, commas, braces, NULL) stays itself.
 */
export function textArrayLiteral(values: readonly string[]): string {
  return `{${values.map((v) => `"${v.replace(/[\\"]/g, '\\$&')}"`).join(',')}}`;
}
