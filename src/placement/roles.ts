import type { ShardClient } from '../fleet/shard-connections.js';
import { ident } from '../sql.js';

/**
 * Tenant roles: one per schema or database tenant, able to use its own placement and nothing of
 * any other tenant. LOGIN without a password: operators set credentials (or map it in
 * pg_hba/pgbouncer) when the application connects per tenant.
 */
export async function ensureTenantRole(c: ShardClient, role: string): Promise<void> {
  const exists = await c.query('select 1 from pg_roles where rolname = $1', [role]);
  if (exists.rowCount) return;
  try {
    await c.query(`create role ${ident(role)} login nosuperuser nocreatedb nocreaterole noinherit nobypassrls`);
  } catch (err) {
    if ((err as { code?: string }).code !== '42710') throw err;
  }
}

export async function dropTenantRole(c: ShardClient, role: string): Promise<void> {
  const exists = await c.query('select 1 from pg_roles where rolname = $1', [role]);
  if (!exists.rowCount) return;
  // Privileges granted to it in this database go first; grants in other databases went with them.
  await c.query(`drop owned by ${ident(role)}`);
  await c.query(`drop role if exists ${ident(role)}`);
}

/** The role may use the schema's tables and sequences, including ones migrations add later. */
export async function grantSchemaToRole(c: ShardClient, schema: string, role: string, admin: string): Promise<void> {
  const s = ident(schema);
  const r = ident(role);
  await c.query(`grant usage on schema ${s} to ${r}`);
  await c.query(`grant select, insert, update, delete on all tables in schema ${s} to ${r}`);
  await c.query(`grant usage, select on all sequences in schema ${s} to ${r}`);
  await c.query(`alter default privileges for role ${ident(admin)} in schema ${s} grant select, insert, update, delete on tables to ${r}`);
  await c.query(`alter default privileges for role ${ident(admin)} in schema ${s} grant usage, select on sequences to ${r}`);
}
