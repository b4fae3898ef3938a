import { createRequire } from 'node:module';
import type TableType from 'cli-table3';
import type { Output } from './output.js';
import { escapeControl, Styled } from './escape.js';

export type Cell = string | number | null | undefined | Styled;

/**
 * Rows as a compact cli-table3 table on a TTY (a rule under the header only, one line per row),
 * as tab-separated lines with a header otherwise (easy to cut and grep in scripts). Control
 * characters in cells are escaped (src/report/escape.ts), so a name cannot break a row or send
 * escape sequences to the terminal; cells wrapped in `styled()` are tenantctl's own colours.
 */
export function renderTable(out: Output, head: string[], rows: Cell[][]): string {
  const cells = rows.map((r) =>
    r.map((c) => (c instanceof Styled ? c.text : c === null || c === undefined ? '' : escapeControl(String(c)))),
  );
  if (!out.tty) return [head.join('\t'), ...cells.map((r) => r.join('\t'))].join('\n');
  // Loaded on first use: --help and plain output never need it (it pulls in string-width & co).
  const Table = createRequire(import.meta.url)('cli-table3') as typeof TableType;
  const table = new Table({ head: head.map((h) => out.color.bold(h)), style: { head: [], border: [], compact: true } });
  table.push(...cells);
  return table.toString();
}
