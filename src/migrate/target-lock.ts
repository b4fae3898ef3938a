import type pg from 'pg';
import { MIGRATION_LOCK_CLASSID } from '../operations/lock-ids.js';
import { literal } from '../sql.js';

/**
 * The per-target advisory lock of the migration engine: classid MIGRATION_LOCK_CLASSID ('tnct'),
 * objid hashtext(schema), in the target's database. Never one key per database, so the schemas
 * of one database migrate in parallel, and one schema never twice.
 */

/** `fn(classid, hashtext('schema'))` with literal values, for SQL text sent in one message. */
export function targetLockSql(fn: 'pg_try_advisory_lock' | 'pg_advisory_xact_lock' | 'pg_advisory_unlock', schema: string): string {
  return `${fn}(${MIGRATION_LOCK_CLASSID}, hashtext(${literal(schema)}))`;
}

/** ` (pid 123, tenantctl, connected since …)` naming the session holding the target's lock, or ''. */
export async function targetLockHolder(client: Pick<pg.ClientBase, 'query'>, schema: string): Promise<string> {
  try {
    const res = await client.query<{ pid: number; application_name: string; since: Date | null }>(
      `select l.pid, a.application_name, a.backend_start as since
         from pg_locks l left join pg_stat_activity a on a.pid = l.pid
        where l.locktype = 'advisory' and l.granted and l.objsubid = 2
          and l.database = (select oid from pg_database where datname = current_database())
          and l.classid = $1::int::oid and l.objid = hashtext($2)::oid
        limit 1`,
      [MIGRATION_LOCK_CLASSID, schema],
    );
    const h = res.rows[0];
    if (!h) return '';
    return ` (pid ${h.pid}${h.application_name ? `, ${h.application_name}` : ''}${h.since ? `, connected since ${h.since.toISOString()}` : ''})`;
  } catch {
    return '';
  }
}
