import type { Config } from '../config/types.js';
import { scopeWhere } from '../placement/placement.js';
import { ident, qualified } from '../sql.js';
import type { CopyScope, CopyTable } from './tables.js';

/**
 * The COPY statements of a copy: out, the tenant's rows in the scope (`scopeWhere`: its key in
 * shared tables, everything in a placement of its own).
 */
export function copyOutSql(t: CopyTable, scope: CopyScope, config: Pick<Config, 'tenantKey'>): string {
  const cols = t.columns.map(ident).join(', ');
  const from = qualified(scope.schema, t.table);
  return `copy (select ${cols} from ${from}${scopeWhere(scope, t.keyColumn, config.tenantKey.type)}) to stdout`;
}

/**
 * COPY in. `freeze` writes the rows frozen and all-visible (COPY FREEZE): only for a plain table
 * made in the loading transaction (a fresh placement), which nobody else can see until it
 * commits. The first scan after a load otherwise rewrites every page to set hint bits: the
 * read-back, the index builds and the foreign-key checks of a restore all scan right after it.
 */
export function copyInSql(t: CopyTable, schema: string, opts: { freeze?: boolean } = {}): string {
  return `copy ${qualified(schema, t.table)} (${t.columns.map(ident).join(', ')}) from stdin${opts.freeze ? ' with (freeze)' : ''}`;
}
