/**
 * Usage of tenants whose rows share tables (placements with `sharedTables`): ONE pass over each
 * table of the shared schema for all its tenants (`group by` the key), never a scan per tenant.
 * Rows are counted per key; bytes are each key's share of the table's total size (heap, indexes
 * and TOAST, partitions included: pg_total_relation_size), in proportion to the bytes of its rows
 * (`pg_column_size` of the row): PostgreSQL keeps no size per key, so this is the honest split,
 * and the tenants' shares add up to the table's size.
 *
 * The `usage` of the shared-tables kind (driver-kinds.ts).
 *
 * @module
 */
import type pg from 'pg';
import type { Config } from '../config/types.js';
import { isLockTimeout } from '../copy/load-lock-wait.js';
import { TenantctlError } from '../errors.js';
import { tenantScopedTables } from './pool/rls.js';
import { ident, qualified } from '../sql.js';
import { emptyUsage, sampled, type DataUsage, type MeasureOptions } from './usage-types.js';
import { exclusiveLockHolders, heldReason, withUsageLockWait } from './usage-lock-wait.js';

/**
 * Measure every key in the shared tables of `schema` (on a connection to their database, as
 * tenantctl's role, which sees every row). Returns usage per key (as text).
 *
 * @example
 *   const byKey = await sharedTablesUsage(c, config, 'app', {});
 *   byKey.get(acme.key)?.rows
 */
export async function sharedTablesUsage(
  c: Pick<pg.ClientBase, 'query'>,
  config: Pick<Config, 'tenantKey' | 'rls' | 'servingRole'>,
  schema: string,
  opts: MeasureOptions,
): Promise<Map<string, DataUsage>> {
  try {
    return await withUsageLockWait(c, () => perKeyUsage(c, config, schema, opts));
  } catch (err) {
    if (!isLockTimeout(err)) throw err;
    // One table is every tenant's: a tenant holding it leaves the whole pool unmeasured, said so.
    throw new TenantctlError('LOCKED', heldReason((await exclusiveLockHolders(c, [schema])).get(schema) ?? ''), undefined, undefined, {
      cause: err,
    });
  }
}

async function perKeyUsage(
  c: Pick<pg.ClientBase, 'query'>,
  config: Pick<Config, 'tenantKey' | 'rls' | 'servingRole'>,
  schema: string,
  opts: MeasureOptions,
): Promise<Map<string, DataUsage>> {
  const out = new Map<string, DataUsage>();
  for (const { table, column } of await tenantScopedTables(c, schema, config)) {
    const q = qualified(schema, table);
    const { from, scale } = sampled(q, 't', opts);
    const { rows } = await c.query<{ key: string; rows: string; bytes: string; total: string }>(perKeyUsageSql(from, column), [q]);
    const sum = rows.reduce((s, r) => s + Number(r.bytes), 0);
    for (const r of rows) {
      if (r.key === null) continue;
      const u = out.get(r.key) ?? emptyUsage();
      const n = Math.round(Number(r.rows) * scale);
      u.rows += n;
      u.maxTableRows = Math.max(u.maxTableRows, n);
      u.bytes += sum > 0 ? Math.round((Number(r.total) * Number(r.bytes)) / sum) : 0;
      out.set(r.key, u);
    }
  }
  return out;
}

/**
 * One table's pass: rows and row bytes per key, and the table's total size ($1: the table's
 * qualified name, for its size). Exported for the test that reads its plan.
 */
export function perKeyUsageSql(from: string, column: string): string {
  // Grouped by the column itself (a uuid hashes faster than its text), cast once per key.
  return `with per_key as (
     select ${ident(column)} as key, count(*) as rows, sum(pg_column_size(t.*)) as bytes
       from ${from} group by 1)
   select key::text, rows::text, bytes::text,
          -- Once per table, not per key: a scalar subquery (an InitPlan). Bare, the
          -- coalesce's fallback ran per output row (pg_partition_tree is empty for a table
          -- that is not partitioned): a thousand keys cost a thousand stat() of its files.
          (select coalesce((select sum(pg_total_relation_size(relid)) from pg_partition_tree($1::regclass)),
                           pg_total_relation_size($1::regclass)))::text as total
     from per_key`;
}
