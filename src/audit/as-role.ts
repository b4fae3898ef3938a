import type { ShardClient } from '../fleet/shard-connections.js';
import { ident } from '../sql.js';

/**
 * Run fn as `role` inside the caller's open transaction, which the caller rolls back. tenantctl's
 * shard role (CREATEROLE, not superuser) may SET ROLE only to roles it is a member of, so when it
 * is not, it grants itself the role first: GRANT is transactional, and the caller's rollback
 * takes it away again, so no membership outlives the probe. A savepoint around the SET LOCAL
 * ROLE brings the connection back to tenantctl's own role afterwards, even after an error.
 *
 * @example
 *   await c.query('begin');
 *   try { await asRole(c, 'tenant_acme', () => c.query('select ...')); } finally { await c.query('rollback'); }
 */
export async function asRole<T>(c: ShardClient, role: string, fn: () => Promise<T>): Promise<T> {
  const member = await c.query<{ ok: boolean }>(`select pg_has_role(current_user, $1, 'MEMBER') as ok`, [role]);
  if (!member.rows[0].ok) await c.query(`grant ${ident(role)} to current_user`);
  await c.query('savepoint tenantctl_as_role');
  try {
    await c.query(`set local role ${ident(role)}`);
    return await fn();
  } finally {
    await c.query('rollback to savepoint tenantctl_as_role');
  }
}

/** Run fn inside a transaction that is always rolled back, with short lock and statement timeouts. */
export async function rolledBack<T>(c: ShardClient, fn: () => Promise<T>): Promise<T> {
  await c.query('begin');
  try {
    await c.query(`set local lock_timeout = '5s'`);
    await c.query(`set local statement_timeout = '60s'`);
    return await fn();
  } finally {
    await c.query('rollback').catch(() => {
      c.tenantctlBroken = true;
    });
  }
}

/** The SQLSTATE of a failed statement, or null when it went through. */
export async function attempt(
  c: ShardClient,
  sql: string,
  params: unknown[] = [],
): Promise<{ code: string | null; rows: number; constraint?: string }> {
  await c.query('savepoint tenantctl_attempt');
  try {
    const r = await c.query(sql, params);
    await c.query('release savepoint tenantctl_attempt');
    return { code: null, rows: r.rowCount ?? 0 };
  } catch (err) {
    await c.query('rollback to savepoint tenantctl_attempt');
    const e = err as { code?: string; constraint?: string };
    return { code: e.code ?? 'XX000', rows: 0, constraint: e.constraint };
  }
}
