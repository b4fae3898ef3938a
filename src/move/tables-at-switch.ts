import type { Config } from '../config/types.js';
import type { Fleet } from '../fleet/fleet.js';
import { copyTables, type CopyTable } from '../copy/tables.js';
import { sqlDigest } from '../copy/sql-digest.js';
import type { TableCheck } from './copy.js';
import type { MovePlan } from './plan.js';
import type { MoveProgress, MoveRecord } from './record.js';

/**
 * What the tenant's tables held at the switch, as `move complete` (the source side) and `move
 * rollback` (the target side) compare them.
 *
 * An online move by trigger capture proves the copy whole BEFORE its fence and, under the fence,
 * checks only the rows changed since the proof: the digests it has at the switch are the proof's,
 * older than the switch by every write replayed in between, and `move complete` would call those
 * writes "written at the source after the switch". So that move switches with `tablesPending`
 * recorded and, once the tenant writes again, measures the source here: its switch fence has held
 * it as it was at the switch, and the target was proven equal to it then, so one measurement is
 * both sides. A move killed before that is measured by the next complete or rollback (the switch
 * fence still holds the source; what this cannot see is a write that got past that fence in the
 * moments before the kill).
 */
export async function tablesAtSwitch(
  deps: { fleet: Fleet; config: Config },
  rec: MoveRecord,
  plan: MovePlan,
  progress: MoveProgress,
): Promise<TableCheck[]> {
  const recorded = progress.tables ?? [];
  if (!progress.tablesPending) return recorded;
  const { from } = plan;
  const scope = { model: from.model, schema: from.schema, key: plan.key };
  const tables = await deps.fleet.withClient(from.shard, from.database, async (c) => {
    await c.query('begin isolation level repeatable read read only');
    try {
      const now = new Map((await copyTables(c, from.schema, deps.config)).map((t) => [t.table, t]));
      const out: TableCheck[] = [];
      for (const w of recorded) {
        const t = now.get(w.table);
        if (!t) continue;
        // The columns the move digested: a column a later migration added stays out.
        const cols = progress.sourceColumns?.[w.table]?.filter((x) => t.columns.includes(x));
        const as: CopyTable = cols ? { ...t, columns: cols, keyIndex: cols.indexOf(t.keyColumn) } : t;
        const d = await sqlDigest(c, as, scope, deps.config);
        const side = { rows: d.rows, hash: d.hash };
        out.push({ ...w, rows: d.rows, bytes: d.bytes, source: side, target: side });
      }
      return out;
    } finally {
      await c.query('rollback').catch(() => undefined);
    }
  });
  const rows = tables.reduce((n, t) => n + t.rows, 0);
  const bytes = tables.reduce((n, t) => n + t.bytes, 0);
  await rec.update({ tables, rows, bytes, tablesPending: false });
  return tables;
}
