/**
 * Made on first use: building an ICU collator costs about 7 ms of CPU, and this module sits in the
 * CLI's main chunk (`tenant list` is registered there), so a module-level one was paid by every
 * command, `--version` included.
 */
let collator: Intl.Collator | undefined;

/**
 * Natural order for names an operator reads: `csv-2, csv-19, csv-20`, not `csv-19, csv-2, csv-20`
 * (the catalog's `order by slug` is byte order).
 *
 * @example
 *   ['csv-20', 'csv-2', 'csv-19'].sort(naturalCompare) // ['csv-2', 'csv-19', 'csv-20']
 */
export function naturalCompare(a: string, b: string): number {
  collator ??= new Intl.Collator('en', { numeric: true, sensitivity: 'variant' });
  return collator.compare(a, b) || (a < b ? -1 : a > b ? 1 : 0);
}

export function sortNaturallyBy<T>(items: T[], key: (item: T) => string): T[] {
  return [...items].sort((x, y) => naturalCompare(key(x), key(y)));
}
