import type pg from 'pg';
import type { Config } from '../../config/types.js';
import { ident, literal, qualified } from '../../sql.js';
import { tenantScopedTables } from './rls.js';

type Queryable = Pick<pg.ClientBase, 'query'>;

/** The names of one fence's three restrictive policies, one per write command (reads are never fenced). */
export interface WritePolicyNames {
  insert: string;
  update: string;
  delete: string;
}

/**
 * On every tenant-scoped table of a pool schema, three RESTRICTIVE policies (insert, update,
 * delete) that call `check(key::text)` for the rows of the session's own tenant (the key equals
 * the tenant setting): the function returns true or raises the fence's error. Another tenant's
 * write, and tenantctl's own work (no setting), never evaluate it in a way that matters: for a
 * key its session is not, the first disjunct is true whatever order the quals run in. RESTRICTIVE,
 * so they only narrow what the permissive `tenantctl_isolation` allows (rls.ts leaves them alone).
 * Creates only what is missing (CREATE POLICY locks the table); returns `table.policy` added.
 */
export async function ensureKeyWritePolicies(
  c: Queryable,
  schema: string,
  config: Pick<Config, 'tenantKey' | 'rls' | 'servingRole'>,
  names: WritePolicyNames,
  check: string,
): Promise<string[]> {
  const tables = await tenantScopedTables(c, schema, config);
  const { rows } = await c.query<{ table: string; name: string }>(
    `select c.relname as table, p.polname as name from pg_policy p join pg_class c on c.oid = p.polrelid
       join pg_namespace n on n.oid = c.relnamespace where n.nspname = $1 and p.polname = any($2)`,
    [schema, Object.values(names)],
  );
  const have = new Set(rows.map((r) => `${r.table}/${r.name}`));
  const added: string[] = [];
  for (const t of tables) {
    const col = ident(t.column);
    const mine = `(${col} is distinct from nullif(current_setting(${literal(config.rls.setting)}, true), '')::${config.tenantKey.type}) or ${check}(${col}::text)`;
    const want: [string, string][] = [
      [names.insert, `for insert to public with check (${mine})`],
      [names.update, `for update to public using (${mine}) with check (${mine})`],
      [names.delete, `for delete to public using (${mine})`],
    ];
    for (const [name, body] of want) {
      if (have.has(`${t.table}/${name}`)) continue;
      await c.query(`create policy ${ident(name)} on ${qualified(schema, t.table)} as restrictive ${body}`);
      added.push(`${t.table}.${name}`);
    }
  }
  return added;
}
