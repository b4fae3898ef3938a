import type pg from 'pg';
import { TenantctlError, type ErrorCode } from '../errors.js';
import { antiJoinSql, lockParentsSql, type ForeignKey } from './fk-check-sql.js';
import type { CopyTable } from './tables.js';

type Q = Pick<pg.ClientBase, 'query'>;

/** The foreign keys of these tables of `schema` (partitions' inherited copies left out: the root's covers them). */
export async function foreignKeysOf(c: Q, schema: string, tables: string[]): Promise<ForeignKey[]> {
  const { rows } = await c.query<ForeignKey>(
    `select k.conname as name, n.nspname as schema, cl.relname as table, k.confmatchtype as match,
            pn.nspname as "parentSchema", pc.relname as "parentTable",
            array(select a.attname::text from unnest(k.conkey) with ordinality u(n, i)
                    join pg_attribute a on a.attrelid = k.conrelid and a.attnum = u.n order by u.i) as columns,
            array(select a.attname::text from unnest(k.confkey) with ordinality u(n, i)
                    join pg_attribute a on a.attrelid = k.confrelid and a.attnum = u.n order by u.i) as "parentColumns"
       from pg_constraint k
       join pg_class cl on cl.oid = k.conrelid join pg_namespace n on n.oid = cl.relnamespace
       join pg_class pc on pc.oid = k.confrelid join pg_namespace pn on pn.oid = pc.relnamespace
      where k.contype = 'f' and k.conparentid = 0 and n.nspname = $1 and cl.relname = any($2)
      order by cl.relname, k.conname`,
    [schema, tables],
  );
  return rows;
}

/**
 * Whether the parent rows of this foreign key are the tenant's own rows loaded by this very
 * transaction: the parent is one of the loaded tenant tables and the FK pairs the child's key
 * column with the parent's. Before a pool load tenantctl proves the target holds no rows of the
 * key (move preflight, restore's KEY_IN_USE, or --replace deleting them first in the same
 * transaction), so every such parent row is still invisible to other sessions, which can neither
 * delete it nor change its key: locking it would only write a lock into each of them.
 */
export function referencesOwnRows(fk: ForeignKey, byTable: Map<string, CopyTable>): boolean {
  const child = byTable.get(fk.table);
  const parent = fk.parentSchema === fk.schema ? byTable.get(fk.parentTable) : undefined;
  if (!child || !parent) return false;
  const i = fk.columns.indexOf(child.keyColumn);
  return i >= 0 && fk.parentColumns[i] === parent.keyColumn;
}

export interface FkCheckReport {
  /** Foreign keys proved, one anti-join each. */
  checked: number;
  /** Parent rows (of shared or other tables) locked FOR KEY SHARE until the commit. */
  lockedParents: number;
}

/**
 * "Once per tenant": after a pool load that ran without the row-by-row referential triggers
 * (see pool-load.ts), prove every foreign key of the loaded tables over the tenant's rows
 * in the caller's transaction. Parent rows outside the load are locked FOR KEY SHARE first (as
 * the triggers would have), then one anti-join per foreign key must find nothing. A violation
 * throws `code`, so the caller's transaction rolls back and nothing of the load is kept.
 *
 * @example
 *   await checkForeignKeysOnce(c, 'app', tables, key, 'uuid', 'MOVE_FAILED');
 */
export async function checkForeignKeysOnce(
  c: Q,
  schema: string,
  tables: CopyTable[],
  key: string,
  keyType: string,
  code: ErrorCode,
  /** NOT VALID foreign keys ("table.name") whose broken rows come from the source: not proved. */
  skip: Set<string> = new Set(),
): Promise<FkCheckReport> {
  const byTable = new Map(tables.map((t) => [t.table, t]));
  const fks = (
    await foreignKeysOf(
      c,
      schema,
      tables.map((t) => t.table),
    )
  ).filter((fk) => !skip.has(`${fk.table}.${fk.name}`));
  let lockedParents = 0;
  // The planner has no statistics for rows loaded in this very transaction, so it takes the
  // tenant's key for a rare one and picks nested loops, which over the tenant's real row counts
  // turn into a scan per row (minutes for a million rows). Hash and merge joins cost what the
  // rows cost, whatever the estimate; the settings go back to what they were after the check.
  const saved = (
    await c.query<{ nl: string; wm: string }>(`select current_setting('enable_nestloop') as nl, current_setting('work_mem') as wm`)
  ).rows[0];
  await c.query(`select set_config('enable_nestloop', 'off', true), set_config('work_mem', '64MB', true)`);
  try {
    for (const fk of fks) lockedParents += await checkOne(c, fk, byTable, key, keyType, code);
  } finally {
    await c.query(`select set_config('enable_nestloop', $1, true), set_config('work_mem', $2, true)`, [saved.nl, saved.wm]);
  }
  return { checked: fks.length, lockedParents };
}

/** Lock (unless the parents are the load's own rows) and prove one foreign key; answers the rows locked. */
async function checkOne(
  c: Q,
  fk: ForeignKey,
  byTable: Map<string, CopyTable>,
  key: string,
  keyType: string,
  code: ErrorCode,
): Promise<number> {
  const scope = { keyColumn: byTable.get(fk.table)!.keyColumn, keyType };
  const locked = referencesOwnRows(fk, byTable) ? 0 : (await c.query<{ n: number }>(lockParentsSql(fk, scope), [key])).rows[0].n;
  const bad = await c.query<{ key: string }>(antiJoinSql(fk, scope), [key]);
  if (bad.rows.length) {
    throw new TenantctlError(
      code,
      `the loaded rows of ${fk.schema}.${fk.table} violate foreign key ${fk.name}: key (${fk.columns.join(', ')})=${bad.rows[0].key} is not present in ${fk.parentSchema}.${fk.parentTable} at the target; nothing was loaded`,
      `add the missing ${fk.parentTable} row(s) at the target (or remove the reference at the source), then run the command again`,
    );
  }
  return locked;
}
