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
 * of the tenant's rows, counted at the source in the copy's snapshot: one statement per table, one
 * after another in the tables' order, each table's answer awaited only when that table starts,
 * so the big tables' counts run while the small ones at the head of the order load.
 */
export async function partsPerTable(
  ends: { target: Q; source: Q },
  targetSchema: string,
  tables: CopyTable[],
  srcScope: CopyScope,
  config: Pick<Config, 'tenantKey'>,
  of: number,
): Promise<PartsOf | undefined> {
  const order = new Map(tables.map((t, i) => [t.table, i]));
  const fks = await foreignKeyEdges(ends.target, targetSchema);
  const selfRef = new Set<string>();
  for (const k of fks) {
    const [c, p] = [order.get(k.child), order.get(k.parent)];
    if (c === undefined || p === undefined) continue;
    if (c === p) selfRef.add(k.child);
    else if (p > c) return undefined;
  }
  // One statement at a time on the connection (pg queues no more), each answer or failure kept
  // for the table that asks for it (never an unhandled rejection meanwhile).
  const counts: Promise<{ n: number; err?: unknown }>[] = [];
  let prev: Promise<unknown> = Promise.resolve();
  for (const t of tables) {
    const sql = `select count(*)::text as n from ${qualified(srcScope.schema, t.table)}${scopeWhere(srcScope, t.keyColumn, config.tenantKey.type)}`;
    const next = selfRef.has(t.table)
      ? prev.then(() => ({ n: 0 }))
      : prev
          .then(() => ends.source.query<{ n: string }>(sql))
          .then(
            (r) => ({ n: Number(r.rows[0].n) }),
            (err: unknown) => ({ n: 0, err }),
          );
    counts.push(next);
    prev = next;
  }
  return {
    counted: prev.then(() => undefined),
    async of(i) {
      const got = await counts[i];
      if (got.err) throw got.err;
      if (got.n < PART_MIN_ROWS) return 1;
      // The source connection also reads a part: the counts after this one end first.
      await prev;
      return of;
    },
  };
}

/** Each table's parts, asked as its load starts; `counted` settles (never rejects) once no count runs. */
export interface PartsOf {
  of: (table: number) => Promise<number>;
  counted: Promise<void>;
}
