/** What `usage` measures of one tenant's data (a driver's `usage`: shared-tables-usage.ts, own-placement-usage.ts). */
export interface DataUsage {
  /** Tables, indexes and TOAST (shared tables: the tenant's share of them, see shared-tables.ts). */
  bytes: number;
  rows: number;
  /** The largest table's rows (against a per-table row quota). */
  maxTableRows: number;
  /** Why this tenant could not be measured (its tables held by another session): then the numbers are zero and mean nothing. */
  unmeasured?: string;
}

/** How a measurement reads the rows: every row, or a TABLESAMPLE of `percent` scaled up. */
export interface MeasureOptions {
  estimate?: { percent: number };
}

/** `from <table>` with the sample clause when estimating, and the factor counts are scaled by. */
export function sampled(table: string, alias: string, opts: MeasureOptions): { from: string; scale: number } {
  if (!opts.estimate) return { from: `${table} ${alias}`, scale: 1 };
  return { from: `${table} ${alias} tablesample system (${opts.estimate.percent})`, scale: 100 / opts.estimate.percent };
}

export function emptyUsage(): DataUsage {
  return { bytes: 0, rows: 0, maxTableRows: 0 };
}
