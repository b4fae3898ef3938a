import pg from 'pg';
import { CONNECT_TIMEOUT_MS } from '../../config/connection-limits.js';
import type { Config } from '../../config/types.js';
import { databaseUrl } from '../../fleet/connection-url.js';
import { endPromptly } from '../../fleet/end-promptly.js';
import { ident, literal } from '../../sql.js';
import { scramVerifier } from '../scram.js';

type Q = Pick<pg.ClientBase, 'query'>;

/** SQLSTATE of a login whose password PostgreSQL refused. */
const INVALID_PASSWORD = '28P01';

/**
 * Does the serving role still log in with servingRole.password on this shard? Every pool tenant's
 * application shares the role, and any of them may run `alter role current_user password '…'`
 * through its own session: PostgreSQL lets every role set its own password, and a CREATEROLE role
 * cannot read pg_authid to see it changed. So this logs in, as the applications do. Only a refused
 * password says no: a database the role may not connect to (or that is missing) comes after the
 * password is accepted. `undefined` when no password is configured (nothing to compare).
 */
export async function servingPasswordRefused(
  shardUrl: string,
  database: string,
  config: Pick<Config, 'servingRole'>,
): Promise<boolean | undefined> {
  if (!config.servingRole.password) return undefined;
  const c = new pg.Client({
    connectionString: servingRoleUrl(shardUrl, database, config),
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    application_name: 'tenantctl',
  });
  c.on('error', () => undefined);
  try {
    await c.connect();
    return false;
  } catch (err) {
    if ((err as { code?: string }).code === INVALID_PASSWORD) return true;
    // Any other refusal (no CONNECT on that database, the role missing) is not about the password.
    return false;
  } finally {
    await endPromptly(c);
  }
}

/** The serving role's login to `database` of the shard, with servingRole.password (as the applications log in). */
export function servingRoleUrl(shardUrl: string, database: string, config: Pick<Config, 'servingRole'>): string {
  const u = new URL(databaseUrl(shardUrl, database));
  u.username = encodeURIComponent(config.servingRole.name);
  u.password = encodeURIComponent(config.servingRole.password ?? '');
  return u.toString();
}

/** Set the serving role's password back to servingRole.password (a CREATEROLE role may, the serving role being NOSUPERUSER). */
export async function resetServingPassword(c: Q, config: Pick<Config, 'servingRole'>): Promise<void> {
  const password = config.servingRole.password;
  if (!password) throw new Error('servingRole.password is not set in the config: nothing to set the serving role back to');
  // Its verifier, never the plain text: a statement can end up in the server's log.
  await c.query(`alter role ${ident(config.servingRole.name)} password ${literal(scramVerifier(password))}`);
}
