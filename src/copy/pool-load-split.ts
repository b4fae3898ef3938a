import type pg from 'pg';
import type { Config } from '../config/types.js';
import { scopeWhere } from '../placement/placement.js';
import { foreignKeyEdges } from '../placement/scoped-tables.js';
import { qualified } from '../sql.js';
import type { ConstraintState } from './not-valid-constraints.js';
import type { CopyScope, CopyTable } from './tables.js';

type Q = Pick<pg.ClientBase, 'query'>;

/** Below this many of the tenant's rows a table loads in one part: a second COPY would cost more than it saves. */
export const PART_MIN_ROWS = 10_000;

/**
 * Whether a row-by-row pool load may commit in parts at all: not when rows break a constraint
 * that is NOT VALID at the source (holdForSharedLoad drops and re-adds it around the load, which
 * only one transaction can do), nor when the source's constraints were not read.
 */
export function mayLoadInParts(constraints: ConstraintState[] | undefined): boolean {
  return constraints !== undefined && !constraints.some((s) => !s.valid && (s.violatingRows ?? 1) > 0);
}

/**
 * In how many parts each table loads (1 or `of`), or undefined when the tables cannot commit in
 * their order: a part's rows are checked by the referential triggers against what is COMMITTED,
 * so every parent a table references within the copy must come earlier (a table referencing a
 * later one is a cycle only one transaction can load). A table referencing itself loads in one
 * part (its rows' parents may be in the other part); so does one with fewer than PART_MIN_ROWS
 * of the tenant's rows, counted at the source in the copy's snapshot. The counts are sent at once,
 * one statement per table in the tables' order, and each table's answer awaited only when that
 * table starts: the big tables' counts run while the small ones at the head of the order load.
 */
export async function partsPerTable(
  ends: { target: Q; source: Q },
  targetSchema: string,
  tables: CopyTable[],
  srcScope: CopyScope,
  config: Pick<Config, 'tenantKey'>,
  of: number,
): Promise<((table: number) => Promise<number>) | undefined> {
  const order = new Map(tables.map((t, i) => [t.table, i]));
  const fks = await foreignKeyEdges(ends.target, targetSchema);
  const selfRef = new Set<string>();
  for (const k of fks) {
    const [c, p] = [order.get(k.child), order.get(k.parent)];
    if (c === undefined || p === undefined) continue;
    if (c === p) selfRef.add(k.child);
    else if (p > c) return undefined;
  }
  // Each count's failure is kept for the table that asks for it (never an unhandled rejection meanwhile).
  const counts = tables.map((t) =>
    selfRef.has(t.table)
      ? Promise.resolve({ n: 0 })
      : ends.source
          .query<{ n: string }>(
            `select count(*)::text as n from ${qualified(srcScope.schema, t.table)}${scopeWhere(srcScope, t.keyColumn, config.tenantKey.type)}`,
          )
          .then(
            (r) => ({ n: Number(r.rows[0].n) }),
            (err: unknown) => ({ n: 0, err }),
          ),
  );
  return async (i) => {
    const got: { n: number; err?: unknown } = await counts[i];
    if (got.err) throw got.err;
    return got.n >= PART_MIN_ROWS ? of : 1;
  };
}
