/**
 * Per shard, from its maintenance database: open sessions (by role, database and
 * application_name: visible to every role in pg_stat_activity) and, where pg_stat_statements is
 * installed there, calls and execution time per role. One query each per shard.
 *
 * @module
 */
import type pg from 'pg';
import { errorMessage } from '../errors.js';
import { ident } from '../sql.js';

export interface SessionCount {
  role: string;
  database: string;
  application: string;
  sessions: number;
}

export async function sessionCounts(c: Pick<pg.ClientBase, 'query'>): Promise<SessionCount[]> {
  const { rows } = await c.query<{ role: string; database: string; application: string; sessions: number }>(
    `select usename as role, datname as database, coalesce(application_name, '') as application, count(*)::int as sessions
       from pg_stat_activity
      -- Another role's rows show no backend_type to a role without pg_read_all_stats (its user,
      -- database and application_name are shown to every role): a session with a user is a
      -- client, or a parallel worker of one while its query runs.
      where coalesce(backend_type, 'client backend') = 'client backend' and usesysid is not null and pid <> pg_backend_pid()
      group by 1, 2, 3`,
  );
  return rows;
}

/** Calls and total execution time per role, or why there are none (the columns are then absent, not zero). */
export type StatementStats = { byRole: Map<string, { calls: number; execMs: number }> } | { absent: string };

export async function statementStats(c: Pick<pg.ClientBase, 'query'>, roles: string[], shard: string): Promise<StatementStats> {
  const ext = await c.query<{ schema: string }>(
    `select n.nspname as schema from pg_extension e join pg_namespace n on n.oid = e.extnamespace where e.extname = 'pg_stat_statements'`,
  );
  if (ext.rows.length === 0) {
    return {
      absent: `pg_stat_statements is not installed on shard ${shard} (in its postgres database: shared_preload_libraries = 'pg_stat_statements', then CREATE EXTENSION pg_stat_statements)`,
    };
  }
  try {
    const { rows } = await c.query<{ role: string; calls: string; ms: number }>(
      `select r.rolname as role, sum(s.calls)::text as calls, sum(s.total_exec_time)::float8 as ms
         from ${ident(ext.rows[0].schema)}.pg_stat_statements s join pg_roles r on r.oid = s.userid
        where r.rolname = any($1::text[]) group by 1`,
      [roles],
    );
    return { byRole: new Map(rows.map((r) => [r.role, { calls: Number(r.calls), execMs: r.ms }])) };
  } catch (err) {
    return { absent: `pg_stat_statements on shard ${shard} cannot be read: ${errorMessage(err)}` };
  }
}
