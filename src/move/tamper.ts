import type pg from 'pg';
import type { CopyTable } from '../copy/tables.js';
import { drivers } from '../placement/drivers.js';
import { ident, qualified } from '../sql.js';
import type { MovePlan } from './plan.js';

/**
 * The fault point `move.verify:tamper` (src/operations/fault-points.ts) of an offline move: one
 * column of one target row changed before verification, which must then refuse the switch;
 * `move.verify:tamper-missing`: one target row of the last table in foreign-key order (no copied
 * row refers to it) deleted instead.
 */
export async function tamperCopy(
  c: pg.ClientBase,
  schema: string,
  tables: CopyTable[],
  plan: MovePlan,
  how: 'change' | 'delete' = 'change',
): Promise<void> {
  if (how === 'delete') return deleteOneRow(c, schema, tables.at(-1), plan);
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

async function deleteOneRow(c: pg.ClientBase, schema: string, t: CopyTable | undefined, plan: MovePlan): Promise<void> {
  if (!t) return;
  const filter = drivers[plan.to.model].keyFilter(t.keyColumn, '', { param: '$1' });
  const mine = filter ? `where ${filter}` : 'where $1::text is not null';
  await c.query(`delete from ${qualified(schema, t.table)} where ctid = (select ctid from ${qualified(schema, t.table)} ${mine} limit 1)`, [
    plan.key,
  ]);
}
