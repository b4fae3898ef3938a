import type pg from 'pg';
import type { Config } from '../config/types.js';
import type { Fleet } from '../fleet/fleet.js';
import { copyTables, type CopyTable } from '../copy/tables.js';
import { sqlDigest } from '../copy/sql-digest.js';
import { rowDigest } from '../build/digest.js';
import type { MoveEnd } from './plan.js';
import type { TableCheck } from './copy.js';

/** A table of one end of a move that is not as the move verified it. */
export interface TableChange {
  table: string;
  /** Rows when the move verified the table (0: the table was not part of the move). */
  atSwitch: number;
  /** Rows now (0: the table is gone). */
  now: number;
}

/** `tasks (60 rows at the switch, 61 now)`, for messages. */
export function describeChanges(changes: TableChange[]): string {
  return changes
    .map((c) => `${c.table} (${c.atSwitch} rows at the switch, ${c.now} now${c.atSwitch === c.now ? ', contents changed' : ''})`)
    .join(', ');
}

/**
 * Which of the tenant's tables at `end` differ from what the move verified (`side` of its
 * recorded checks), measured as the move measured them, in one read-only snapshot: sqlDigest
 * (`rows:a:b`), or RowTap's hash for a move switched by an older tenantctl (`rows:hex`).
 * `columns` (the columns the move digested, per table) keeps a column a later migration added
 * out of the comparison; a recorded column gone since counts as a change. Tables the move did not
 * know count when they hold the tenant's rows (or always, with `anyNewTable`). Empty: unchanged.
 */
export async function changedSinceSwitch(
  deps: { fleet: Fleet; config: Config },
  end: MoveEnd,
  key: string,
  recorded: TableCheck[],
  side: 'source' | 'target',
  opts: { columns?: Record<string, string[]>; anyNewTable?: boolean } = {},
): Promise<TableChange[]> {
  const { fleet, config } = deps;
  return fleet.withClient(end.shard, end.database, async (c) => {
    await c.query('begin isolation level repeatable read read only');
    try {
      const now = new Map((await copyTables(c, end.schema, config)).map((t) => [t.table, t]));
      const scope = { model: end.model, schema: end.schema, key };
      const out: TableChange[] = [];
      for (const w of recorded) {
        const want = w[side];
        const t = now.get(w.table);
        now.delete(w.table);
        if (!t) {
          if (want.rows > 0) out.push({ table: w.table, atSwitch: want.rows, now: 0 });
          continue;
        }
        const cols = opts.columns?.[w.table];
        if (cols && !cols.every((x) => t.columns.includes(x))) {
          const n = await rowsOf(c, t, scope, config);
          if (want.rows > 0 || n > 0) out.push({ table: w.table, atSwitch: want.rows, now: n });
          continue;
        }
        const as: CopyTable = cols ? { ...t, columns: cols, keyIndex: cols.indexOf(t.keyColumn) } : t;
        const d = await rowDigest(c, as, scope, config, want.hash);
        if (want.rows !== d.rows || want.hash !== d.hash) out.push({ table: w.table, atSwitch: want.rows, now: d.rows });
      }
      // Tables the move did not copy (made by a later migration): any row of the tenant is new.
      for (const t of now.values()) {
        const n = await rowsOf(c, t, scope, config);
        if (n > 0 || opts.anyNewTable) out.push({ table: t.table, atSwitch: 0, now: n });
      }
      return out;
    } finally {
      await c.query('rollback').catch(() => undefined);
    }
  });
}

async function rowsOf(c: pg.ClientBase, t: CopyTable, scope: { model: MoveEnd['model']; schema: string; key: string }, config: Config) {
  return (await sqlDigest(c, { ...t, columns: [] }, scope, config)).rows;
}
