import type pg from 'pg';
import { plainTables } from '../copy/tables.js';
import { qualified } from '../sql.js';

/**
 * What restore does differently when a migration must run outside a transaction
 * (`-- tenantctl:no-transaction`, e.g. CREATE INDEX CONCURRENTLY): schema and database tenants
 * are built step by step (restore.ts); a pool restore that would need such a file inside its one
 * transaction is refused before anything changes (restore-pool-version.ts).
 */

/**
 * Of the tables about to be loaded, the plain ones that are still empty, truncated in the
 * caller's transaction: COPY FREEZE takes only a table made or truncated in the loading
 * transaction, and a placement built step by step made its tables in earlier ones. Truncating an
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
