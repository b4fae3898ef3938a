import type pg from 'pg';
import { ident, qualified } from '../sql.js';

type Q = Pick<pg.ClientBase, 'query'>;

/**
 * Switch off, for a load into a placement nobody sees yet (a move's or a restore's new schema or
 * database), the user triggers that fire in ordinary sessions (`tgenabled = 'O'`), and return
 * what switches them back on. The rows copied already went through the application's triggers
 * where they were first written; firing them again would write twice (an audit row, a counter)
 * or fail (a trigger that writes a table the load has not reached, or needs an index the load
 * dropped). This is what `session_replication_role = replica` does for a pool load, without the
 * grant: triggers set `ENABLE REPLICA` or `ENABLE ALWAYS` still fire, as logical replication
 * would fire them. Each relation is altered `ONLY`, partitions included, so a partitioned
 * table's cloned triggers are switched one by one and nothing depends on recursion. tenantctl's
 * role owns the placement's tables (it dropped their indexes for the load); no other session
 * can reach them before the catalog names the placement.
 */
export async function userTriggersOff(c: Q, schema: string): Promise<() => Promise<void>> {
  const { rows } = await c.query<{ rel: string; tg: string }>(
    `select cl.relname as rel, t.tgname as tg
       from pg_trigger t join pg_class cl on cl.oid = t.tgrelid join pg_namespace n on n.oid = cl.relnamespace
      where n.nspname = $1 and not t.tgisinternal and t.tgenabled = 'O'
      order by cl.relname, t.tgname`,
    [schema],
  );
  const alter = (on: boolean) =>
    rows.map((r) => `alter table only ${qualified(schema, r.rel)} ${on ? 'enable' : 'disable'} trigger ${ident(r.tg)}`).join(';\n');
  if (rows.length) await c.query(alter(false));
  return async () => {
    if (rows.length) await c.query(alter(true));
  };
}
