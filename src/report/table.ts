import { createRequire } from 'node:module';
import type TableType from 'cli-table3';
import type { Output } from './output.js';

/**
 * Rows as a cli-table3 table on a TTY, as tab-separated lines with a header otherwise (easy to
 * cut and grep in scripts).
 */
export function renderTable(out: Output, head: string[], rows: (string | number | null | undefined)[][]): string {
  const cells = rows.map((r) => r.map((c) => (c === null || c === undefined ? '' : String(c))));
  if (!out.tty) return [head.join('\t'), ...cells.map((r) => r.join('\t'))].join('\n');
  // Loaded on first use: --help and plain output never need it (it pulls in string-width & co).
  const Table = createRequire(import.meta.url)('cli-table3') as typeof TableType;
  const table = new Table({ head: head.map((h) => out.color.bold(h)), style: { head: [], border: [] } });
  table.push(...cells);
  return table.toString();
}
