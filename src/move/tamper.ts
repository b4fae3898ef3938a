import type pg from 'pg';
import type { CopyTable } from '../copy/tables.js';
import { drivers } from '../placement/drivers.js';
import { ident, qualified } from '../sql.js';
import type { MovePlan } from './plan.js';

/**
 * The fault point `move.verify:tamper` (src/operations/fault-points.ts) of an offline move: one
 * column of one target row changed before verification, which must then refuse the switch.
 */
export async function tamperCopy(c: pg.ClientBase, schema: string, tables: CopyTable[], plan: MovePlan): Promise<void> {
  for (const t of [...tables].reverse()) {
    const col = t.columns.find((x) => x !== t.keyColumn && /name|title|body|email/.test(x));
    if (!col) continue;
    const filter = drivers[plan.to.model].keyFilter(t.keyColumn, '', { param: '$1' });
    const mine = filter ? `where ${filter}` : 'where $1::text is not null';
    const r = await c.query(
      `update ${qualified(schema, t.table)} set ${ident(col)} = ${ident(col)} || 'x' where ctid = (select ctid from ${qualified(schema, t.table)} ${mine} limit 1)`,
      [plan.key],
    );
    if (r.rowCount) return;
  }
}
