import pg from 'pg';
import { TenantctlError, errorMessage } from '../errors.js';
import { redactText } from '../config/redact.js';
import { ident, isAlreadyExists, literal } from '../sql.js';
import { MAINTENANCE_DATABASES } from '../placement/databases.js';
import { DEV_SUPERUSER, type ClusterSpec } from './cluster.js';
import { CLOSED_FUNCTIONS, closeFunctionsSql } from '../placement/closed-functions.js';
import { FENCE_SCHEMA } from '../placement/pool/fence.js';

/**
 * Give an embedded cluster the least-privileged role its shard url names: LOGIN CREATEDB
 * CREATEROLE, not SUPERUSER, not BYPASSRLS, which is what operators give tenantctl on real
 * clusters. The dev fleet and the tests then run as it, so a bug that only a superuser's rights
 * hide (RLS skipped, any role droppable) shows up locally. The cluster's superuser (`postgres`,
 * same password) connects once for this. Idempotent: an existing role keeps its attributes, and
 * its password follows the url. A url whose user is the superuser itself is left as it is.
 * It also gets the optional grant of SET on session_replication_role (see grantReplicationRole),
 * and the maintenance databases are closed to PUBLIC (closeMaintenanceDatabases).
 */
export async function ensureShardRole(spec: ClusterSpec): Promise<void> {
  if (spec.user === DEV_SUPERUSER) return;
  const client = new pg.Client({ host: spec.host, port: spec.port, user: DEV_SUPERUSER, password: spec.password, database: 'postgres' });
  client.on('error', () => undefined); // a cluster stopping meanwhile fails the next query, not the process
  try {
    await client.connect();
    const exists = await client.query('select 1 from pg_roles where rolname = $1', [spec.user]);
    if (exists.rowCount) {
      await client.query(`alter role ${ident(spec.user)} password ${literal(spec.password)}`);
    } else {
      try {
        await client.query(
          `create role ${ident(spec.user)} login createdb createrole nosuperuser nobypassrls password ${literal(spec.password)}`,
        );
      } catch (err) {
        if (!isAlreadyExists(err)) throw err;
      }
    }
    await grantReplicationRole(client, spec.user);
    await closeMaintenanceDatabases(client, spec.user);
    await closeFunctions(client, spec);
  } catch (err) {
    throw new TenantctlError(
      'DEV_FAILED',
      `could not create the shard role ${spec.user} on ${spec.host}:${spec.port}: ${redactText(errorMessage(err))}`,
      `the embedded cluster's superuser is "${DEV_SUPERUSER}" with the url's password; if this cluster was made with another password, \`tenantctl dev reset --yes\` recreates it`,
    );
  } finally {
    await client.end().catch(() => {});
  }
}

/**
 * `GRANT SET ON PARAMETER session_replication_role` (PostgreSQL 15 and newer; GRANT is
 * idempotent): lets tenantctl load a tenant into a live pool with its foreign keys checked once
 * per tenant instead of row by row (src/copy/pool-load.ts). Not an escalation: the role owns the
 * tables whose triggers this skips for its own transaction, and could drop or disable them anyway.
 */
async function grantReplicationRole(client: pg.Client, role: string): Promise<void> {
  const { rows } = await client.query<{ n: number }>(`select current_setting('server_version_num')::int as n`);
  if (rows[0].n < 150000) return;
  // temp_file_limit: a tier's tempFileLimit (issue 19) is superuser-only; with SET on it tenantctl
  // can put it on a tenant role, which then cannot raise it for itself.
  await client.query(`grant set on parameter session_replication_role, temp_file_limit to ${ident(role)}`);
}

/**
 * The databases every cluster has (`postgres`, `template1`) grant CONNECT and TEMP to PUBLIC, so
 * every tenant role could connect there, hold advisory locks, and own large objects that block
 * its own deletion (a large object in template1 is even copied into each new database). Tenant
 * roles need neither: the superuser takes both away from PUBLIC and grants them to the shard role
 * by name — it connects to `postgres` (its url's database) and is not the owner of either.
 * Idempotent. On real clusters `tenantctl doctor` names the same fix for the operator to run.
 */
async function closeMaintenanceDatabases(client: pg.Client, role: string): Promise<void> {
  for (const database of MAINTENANCE_DATABASES) {
    await client.query(`grant connect, temporary on database ${ident(database)} to ${ident(role)}`);
    await client.query(`revoke connect, temporary on database ${ident(database)} from public`);
  }
}

/**
 * Advisory locks and making large objects for the shard role only, in every database of the
 * cluster (function privileges are per database; template1's go to each new one): one tenant
 * session could otherwise fill the cluster's lock table, or own large objects that usage cannot
 * measure and that refuse its backups (src/placement/closed-functions.ts). A pool made by an older
 * tenantctl gets its write-fence function as SECURITY DEFINER first, or its tenants' writes would
 * be refused. Idempotent; on real clusters `tenantctl doctor` names the statements.
 */
async function closeFunctions(client: pg.Client, spec: ClusterSpec): Promise<void> {
  const { rows } = await client.query<{ d: string }>(`select datname as d from pg_database where datallowconn order by datname`);
  for (const { d } of rows) {
    const c = new pg.Client({ host: spec.host, port: spec.port, user: DEV_SUPERUSER, password: spec.password, database: d });
    c.on('error', () => undefined);
    try {
      await c.connect();
    } catch (err) {
      // Dropped since it was listed (a tenant deleted, a move completed meanwhile): nothing to close there.
      if ((err as { code?: string }).code === '3D000') continue;
      throw err;
    }
    try {
      await c.query(
        `do $$ begin
           if to_regprocedure('${FENCE_SCHEMA}.check_writable(text)') is not null then
             alter function ${FENCE_SCHEMA}.check_writable(text) security definer;
           end if;
         end $$`,
      );
      for (const group of CLOSED_FUNCTIONS) await c.query(closeFunctionsSql(group, spec.user));
    } catch (err) {
      // Its session ended by a DROP DATABASE … WITH (FORCE) while these ran: gone, nothing to close.
      const gone = await client.query('select 1 from pg_database where datname = $1', [d]);
      if (gone.rowCount) throw err;
    } finally {
      await c.end().catch(() => undefined);
    }
  }
}
