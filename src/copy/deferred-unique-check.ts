import type pg from 'pg';
import { type ErrorCode, TenantctlError } from '../errors.js';
import { keyCondition } from '../placement/key-filter.js';
import { ident, qualified } from '../sql.js';
import type { CopyTable } from './tables.js';

type Q = Pick<pg.ClientBase, 'query'>;

interface Deferred {
  table: string;
  name: string;
  /** Column and operator pairs: `=` for a unique constraint or primary key, the exclusion's own operators. */
  parts: { column: string; op: string }[];
}

/**
 * A DEFERRABLE unique, primary-key or exclusion constraint is checked twice: the index insert lets
 * a conflict through as "maybe", and an internal trigger rechecks it at the end of the statement
 * (or the commit). `session_replication_role = replica`, which a pool load runs with when the role
 * may (pool-load.ts), skips that trigger like any other, so rows that conflict with another
 * tenant's went in (found: three pool rows with one value of a `unique (ext_ref) deferrable`).
 * After such a load, each of these constraints is checked over the loaded tenant's rows, one index
 * lookup per row: any row of the table (another tenant's too) that conflicts fails the load, in
 * the caller's transaction, naming the constraint and the value.
 */
export async function checkDeferredUniques(
  c: Q,
  schema: string,
  tables: CopyTable[],
  key: string,
  keyType: string,
  code: ErrorCode,
): Promise<void> {
  const byTable = new Map(tables.map((t) => [t.table, t]));
  for (const d of await deferredOf(c, schema, [...byTable.keys()])) {
    const t = byTable.get(d.table)!;
    const same = d.parts.map((p) => `b.${ident(p.column)} ${p.op} a.${ident(p.column)}`).join(' and ');
    const shown = d.parts.map((p) => `a.${ident(p.column)}::text`).join(` || ', ' || `);
    const { rows } = await c.query<{ v: string }>(
      `select ${shown} as v from ${qualified(schema, d.table)} a
        where ${keyCondition(t.keyColumn, keyType, { param: '$1' }, 'a')}
          and exists (select 1 from ${qualified(schema, d.table)} b where ${same} and (b.tableoid, b.ctid) <> (a.tableoid, a.ctid))
        limit 1`,
      [key],
    );
    if (rows.length) {
      throw new TenantctlError(
        code,
        `${d.table}: the tenant's rows conflict with another row of ${schema}.${d.table} on the deferrable constraint ${d.name} (${d.parts.map((p) => p.column).join(', ')}) = (${rows[0].v}); nothing was loaded`,
        `change the conflicting value at the source (or at the target), then run it again; a constraint that leaves out the tenant key is shared by every tenant of the pool`,
      );
    }
  }
}

/** The loaded tables' deferrable unique, primary-key and exclusion constraints, with their columns and operators. */
async function deferredOf(c: Q, schema: string, tables: string[]): Promise<Deferred[]> {
  const { rows } = await c.query<{ table: string; name: string; columns: string[]; ops: string[] | null }>(
    `select r.relname as table, k.conname as name,
            array(select a.attname from unnest(k.conkey) with ordinality u(n, i) join pg_attribute a on a.attrelid = k.conrelid and a.attnum = u.n order by u.i)::text[] as columns,
            case when k.contype = 'x' then array(select format('operator(%I.%s)', q.nspname, o.oprname)
              from unnest(k.conexclop) with ordinality u(op, i) join pg_operator o on o.oid = u.op
              join pg_namespace q on q.oid = o.oprnamespace order by u.i)::text[] end as ops
       from pg_constraint k join pg_class r on r.oid = k.conrelid join pg_namespace n on n.oid = r.relnamespace
      where n.nspname = $1 and r.relname = any($2) and k.contype in ('p', 'u', 'x') and k.condeferrable
        and not (0 = any(k.conkey)) order by 1, 2`,
    [schema, tables],
  );
  return rows.map((r) => ({
    table: r.table,
    name: r.name,
    parts: r.columns.map((column, i) => ({ column, op: r.ops?.[i] ?? '=' })),
  }));
}
