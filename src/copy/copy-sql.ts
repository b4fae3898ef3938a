import type { Config } from '../config/types.js';
import { scopeWhere } from '../placement/placement.js';
import { ident, qualified } from '../sql.js';
import type { CopyScope, CopyTable } from './tables.js';

/**
 * The COPY statements of a copy: out, the tenant's rows in the scope (`scopeWhere`: its key in
 * shared tables, everything in a placement of its own).
 */
export function copyOutSql(
  t: CopyTable,
  scope: CopyScope,
  config: Pick<Config, 'tenantKey'>,
  part?: CopyPart,
  o: { binary?: boolean } = {},
): string {
  const cols = t.columns.map(ident).join(', ');
  const from = qualified(scope.schema, t.table);
  const where = scopeWhere(scope, t.keyColumn, config.tenantKey.type);
  const only = part ? `${where ? ' and' : ' where'} ${partCondition(part)}` : '';
  return `copy (select ${cols} from ${from}${where}${only}) to stdout${o.binary ? ' with (format binary)' : ''}`;
}

/** One of `of` disjoint parts of a table's rows, which together are all of them (pool-split.ts). */
export interface CopyPart {
  index: number;
  of: number;
}

/**
 * The rows of one part, by the heap page each row's version is on (its ctid's block number) in the
 * reading snapshot: every row is on exactly one page, so the parts are disjoint and whole for any
 * table without asking for its key or primary key, and computing it reads nothing more than the
 * row. Read in one snapshot, a row cannot move between two parts' reads.
 */
export function partCondition(part: CopyPart): string {
  return `((ctid::text::point)[0]::bigint % ${part.of}) = ${part.index}`;
}

/**
 * COPY in. `binary`: the rows in COPY BINARY (only from a COPY out in binary of the same column
 * types, binary-copy.ts). `freeze` writes the rows frozen and all-visible (COPY FREEZE): only for a plain table
 * made in the loading transaction (a fresh placement), which nobody else can see until it
 * commits. The first scan after a load otherwise rewrites every page to set hint bits: the
 * read-back, the index builds and the foreign-key checks of a restore all scan right after it.
 */
export function copyInSql(t: CopyTable, schema: string, opts: { freeze?: boolean; binary?: boolean } = {}): string {
  const w = [opts.freeze ? 'freeze' : '', opts.binary ? 'format binary' : ''].filter(Boolean);
  return `copy ${qualified(schema, t.table)} (${t.columns.map(ident).join(', ')}) from stdin${w.length ? ` with (${w.join(', ')})` : ''}`;
}
