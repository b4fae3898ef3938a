/**
 * Passwords of tenant roles (`tenant credentials`). The password is made here, sent to
 * PostgreSQL only as a SCRAM-SHA-256 verifier (so the plain text is in no statement, server log
 * or pg_stat_statements), printed once by the command and stored nowhere. Whether a role has a
 * password is not readable by a CREATEROLE role (pg_authid is superuser-only), so tenantctl marks
 * the role with a comment when it sets one; a superuser connection reads pg_authid instead.
 *
 * @example
 *   const pw = newPassword();
 *   await setRolePassword(c, 'tenant_acme', pw);
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import { scramVerifier } from './scram.js';
import { type Fleet, inTransaction, isConnectionError } from '../fleet/fleet.js';
import type { ShardClient } from '../fleet/shard-connections.js';
import { ident, literal } from '../sql.js';
import { ADMIN_DATABASE } from './databases.js';
import { type CatalogPlacement, tenantRole } from './placement.js';
import type { RolePassword } from './resolve.js';

export { scramVerifier } from './scram.js';

/** The comment tenantctl puts on a role whose password it set, followed by when. */
export const PASSWORD_MARKER = 'tenantctl: password set ';

/** 32 characters of base64url from 24 random bytes (192 bits): no character needs escaping in a URL or a shell. */
export function newPassword(): string {
  return randomBytes(24).toString('base64url');
}

/** When tenantctl set the role's password (null: not by tenantctl, or never), and whether the role exists. */
export interface RolePasswordState {
  exists: boolean;
  /** The role has a password: tenantctl's mark, or pg_authid on a superuser connection. */
  hasPassword: boolean;
  /** When tenantctl set it (from its mark), if it did. */
  setAt: string | null;
}

/** Read a role's password state. Run on any database of the cluster (roles are cluster-wide). */
export async function rolePasswordState(c: ShardClient, role: string): Promise<RolePasswordState> {
  const { rows } = await c.query<{ note: string | null; superuser: boolean }>(
    `select shobj_description(r.oid, 'pg_authid') as note,
            (select rolsuper from pg_roles where rolname = current_user) as superuser
       from pg_roles r where r.rolname = $1`,
    [role],
  );
  if (rows.length === 0) return { exists: false, hasPassword: false, setAt: null };
  const note = rows[0].note ?? '';
  const setAt = note.startsWith(PASSWORD_MARKER) ? note.slice(PASSWORD_MARKER.length) : null;
  if (rows[0].superuser) {
    const su = await c.query<{ has: boolean }>('select rolpassword is not null as has from pg_authid where rolname = $1', [role]);
    return { exists: true, hasPassword: Boolean(su.rows[0]?.has), setAt };
  }
  return { exists: true, hasPassword: setAt !== null, setAt };
}

/**
 * Give the role this password (as its verifier) and mark it, in one transaction. The statement
 * holds only the verifier, never the password.
 */
export async function setRolePassword(c: ShardClient, role: string, password: string, at = new Date()): Promise<void> {
  await inTransaction(c, async () => {
    await c.query(`alter role ${ident(role)} password ${literal(scramVerifier(password))}`);
    await c.query(`comment on role ${ident(role)} is ${literal(PASSWORD_MARKER + at.toISOString())}`);
  });
}

/**
 * The password state of a tenant's own role for `resolve`: null when its model has none (the
 * pool's serving role), 'unreachable' when its shard does not answer (resolve still answers).
 */
export async function tenantRolePassword(fleet: Fleet, t: CatalogPlacement): Promise<RolePassword | null> {
  const role = tenantRole(t);
  if (role === null) return null;
  try {
    return await fleet.withClient(t.shard, ADMIN_DATABASE, (c) => rolePasswordState(c, role));
  } catch (err) {
    if ((err as { code?: string }).code === 'UNREACHABLE' || isConnectionError(err)) return 'unreachable';
    throw err;
  }
}
