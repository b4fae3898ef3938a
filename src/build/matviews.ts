import type pg from 'pg';

/**
 * Refresh the materialized views of a placement just loaded (a move's or a restore's target): the
 * migrations that built it made them over empty tables, and the copy carries tables only, so the
 * application would read them empty until someone refreshes them, which its role cannot do
 * (PostgreSQL 15 lets only the owner, tenantctl). Refreshed in creation order (a view over another
 * after it); one made WITH NO DATA stays so.
 *
 * @example
 *   await refreshMaterializedViews(c, 't_acme'); // after the load, before the switch
 */
export async function refreshMaterializedViews(c: pg.ClientBase, schema: string): Promise<number> {
  const { rows } = await c.query<{ name: string }>(
    `select quote_ident(n.nspname) || '.' || quote_ident(cl.relname) as name
       from pg_class cl join pg_namespace n on n.oid = cl.relnamespace
      where n.nspname = $1 and cl.relkind = 'm' and cl.relispopulated
      order by cl.oid`,
    [schema],
  );
  for (const r of rows) await c.query(`refresh materialized view ${r.name}`);
  return rows.length;
}
