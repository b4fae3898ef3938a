import type pg from 'pg';
import { deferIndexes } from '../copy/deferred-indexes.js';
import { emptiedForFreeze } from '../copy/freeze.js';
import type { ConstraintState } from '../copy/not-valid-constraints.js';
import { userTriggersOff } from '../copy/user-triggers.js';
import { refreshMaterializedViews } from './matviews.js';

/**
 * Rows into a fresh placement nobody reads yet (a restore's, a move's target), in the caller's
 * transaction: its indexes and foreign keys dropped for the load and built once after it (the
 * source's NOT VALID constraints come back NOT VALID), its still-empty plain tables truncated so
 * that they load frozen (COPY FREEZE). `load` gets the tables that may load frozen, and `built`,
 * which builds the indexes and keys back (a caller that verifies after them calls it itself;
 * otherwise it runs once the load returns). The placement's user triggers do not fire for the
 * copied rows (user-triggers.ts); they are on again before the transaction commits, and its
 * materialized views are refreshed over the loaded rows (matviews.ts).
 */
export async function intoFreshTables<T>(
  c: pg.ClientBase,
  schema: string,
  source: { tables: { table: string }[]; constraints?: ConstraintState[] },
  load: (frozen: Set<string>, built: () => Promise<void>) => Promise<T>,
): Promise<T> {
  const recreate = await deferIndexes(c, schema, source.constraints);
  let done = false;
  const built = async () => {
    if (done) return;
    done = true;
    await recreate();
  };
  const frozen = await emptiedForFreeze(
    c,
    schema,
    source.tables.map((t) => t.table),
  );
  const triggersOn = await userTriggersOff(c, schema);
  const out = await load(frozen, built);
  await built();
  await triggersOn();
  await refreshMaterializedViews(c, schema);
  return out;
}
