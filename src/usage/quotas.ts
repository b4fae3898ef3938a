/**
 * A tenant's measured usage against its tier's quotas (src/config/tier-limits.ts). Pure.
 *
 * @module
 */
import { quotaValue, rowQuotas, type TierLimits } from '../config/tier-limits.js';

export interface Quotas {
  storage: number | null;
  rows: number | null;
  rowsPerTable: number | null;
  connections: number | null;
}

export function quotasOf(tier: TierLimits | undefined): Quotas {
  const q = tier?.quotas;
  const rows = rowQuotas(q);
  return { storage: quotaValue(q?.storage), rows: rows.total, rowsPerTable: rows.perTable, connections: quotaValue(q?.connections) };
}

/**
 * Which quotas the usage exceeds.
 *
 * @example
 *   overQuota({ bytes: 2e9, rows: 10, maxTableRows: 10, connections: 0 }, { storage: 1e9, rows: null, rowsPerTable: null, connections: null })
 *   // ['storage']
 */
export function overQuota(u: { bytes: number; rows: number; maxTableRows: number; connections: number }, q: Quotas): string[] {
  const over: string[] = [];
  if (q.storage !== null && u.bytes > q.storage) over.push('storage');
  if (q.rows !== null && u.rows > q.rows) over.push('rows');
  if (q.rowsPerTable !== null && u.maxTableRows > q.rowsPerTable) over.push('rowsPerTable');
  if (q.connections !== null && u.connections > q.connections) over.push('connections');
  return over;
}
