import type pg from 'pg';
import { plainTables } from './tables.js';
import { qualified } from '../sql.js';

/**
 * Of the tables about to be loaded, the plain ones that are still empty, truncated in the
 * caller's transaction: COPY FREEZE takes only a table made or truncated in the loading
 * transaction, and a placement built before its load (restore step by step, a move's target built
 * before the fence) made its tables in earlier ones. Frozen rows are all-visible at once: the
 * read-back, the index builds and the foreign-key checks right after the load do not rewrite
 * every page for hint bits. Truncating an
 * empty table changes nothing; a table that already holds rows (a migration's) loads plainly, as
 * it would in one transaction. Call after deferIndexes (its foreign keys are gone, so TRUNCATE
 * does not need the referencing tables too).
 */
export async function emptiedForFreeze(c: Pick<pg.ClientBase, 'query'>, schema: string, tables: string[]): Promise<Set<string>> {
  const plain = await plainTables(c, schema);
  const out = new Set<string>();
  for (const t of tables) {
    if (!plain.has(t)) continue;
    const { rows } = await c.query<{ found: boolean }>(`select exists (select 1 from ${qualified(schema, t)}) as found`);
    if (rows[0]?.found) continue;
    await c.query(`truncate table ${qualified(schema, t)}`);
    out.add(t);
  }
  return out;
}
