import { randomUUID } from 'node:crypto';
import { shardPlace, watchConnection } from '../connection-loss.js';
import pg from 'pg';
import type { Config } from '../config/types.js';
import type { Fleet } from '../fleet/fleet.js';
import type { ShardClient } from '../fleet/shard-connections.js';
import { CONNECT_TIMEOUT_MS } from '../config/connection-limits.js';
import { ident, qualified } from '../sql.js';
import { asRole, attempt, rolledBack } from './as-role.js';
import { finding } from './registry.js';
import { servingRoleUrl } from '../placement/pool/serving-login.js';
import type { AuditUnit, Finding } from './types.js';

export interface ProbeTable {
  table: string;
  column: string;
  /** A row of another tenant than A (as JSON), read by tenantctl, to collide with. */
  other: Record<string, unknown> | null;
  /** Unique indexes of the table that leave out the tenant key (a collision there is another tenant's row). */
  keyless: string[];
}

/**
 * Live probes of a pool target as the serving role, the way the application connects: a login
 * with servingRole.name/password when a password is configured (it takes the slot of one of the
 * fleet's connections, so the shard's budget holds), otherwise SET ROLE on a fleet connection.
 * Everything runs in transactions that are rolled back.
 *  - no setting: no rows visible (or an error);
 *  - tenant A's setting: no row with another key visible; inserting a copy of a row with B's key
 *    is refused by the policy (42501) — anything else means the policy let it through;
 *  - A's setting, a copy of B's row under A's key: a unique violation would tell A that B has
 *    that value;
 *  - the setting, set transaction-locally and committed, is gone in the next transaction.
 */
export async function poolProbes(
  fleet: Fleet,
  config: Config,
  unit: AuditUnit,
  schema: string,
  tables: ProbeTable[],
  keys: { a: string; b: string },
): Promise<Finding[]> {
  if (tables.length === 0) return [];
  const at = { shard: unit.shard, database: unit.database, tenant: null };
  const type = config.tenantKey.type;
  const setting = config.rls.setting;
  const out: Finding[] = [];
  const refused = await withServingConnection(fleet, config, unit, async (c, asServing) => {
    // No setting at all: a fresh transaction on this connection.
    await rolledBack(c, () =>
      asServing(async () => {
        for (const t of tables) {
          const r = await attempt(c, `select 1 from ${qualified(schema, t.table)} limit 1`);
          if (r.code === null && r.rows > 0) {
            out.push(
              finding('probe.no-setting-read', {
                ...at,
                object: `${schema}.${t.table}`,
                message: `probe: as ${config.servingRole.name} with no ${setting} set, rows of ${schema}.${t.table} are visible`,
                fix: null,
              }),
            );
          }
        }
      }),
    );
    // An empty setting: what a connection reads after a transaction-local set_config committed.
    // A policy matching keys by prefix (like … || '%') or treating '' as a wildcard sees everyone.
    await rolledBack(c, () =>
      asServing(async () => {
        await c.query('select set_config($1, $2, true)', [setting, '']);
        for (const t of tables) {
          const r = await attempt(c, `select 1 from ${qualified(schema, t.table)} limit 1`);
          if (r.code === null && r.rows > 0) {
            out.push(
              finding('probe.empty-setting-read', {
                ...at,
                object: `${schema}.${t.table}`,
                message: `probe: as ${config.servingRole.name} with ${setting} = '' (what it reads after a transaction that set it locally), rows of ${schema}.${t.table} are visible`,
                fix: null,
              }),
            );
          }
        }
      }),
    );
    await rolledBack(c, () =>
      asServing(async () => {
        await c.query('select set_config($1, $2, true)', [setting, keys.a]);
        for (const t of tables) {
          const q = qualified(schema, t.table);
          const col = ident(t.column);
          const seen = await attempt(c, `select 1 from ${q} where ${col} is distinct from $1::${type} limit 1`, [keys.a]);
          if (seen.code === null && seen.rows > 0) {
            out.push(
              finding('probe.cross-tenant-read', {
                ...at,
                object: `${schema}.${t.table}`,
                message: `probe: as ${config.servingRole.name} with ${setting} = tenant A, rows of other tenants in ${schema}.${t.table} are visible`,
                fix: null,
              }),
            );
          }
          if (!t.other) continue;
          // A copy of an existing row with B's key, written under A's setting: the policy's WITH
          // CHECK runs before constraints, so 42501 is the only right answer.
          const write = await attempt(
            c,
            `insert into ${q} select (jsonb_populate_record(null::${q}, $1::jsonb || jsonb_build_object($2::text, $3::text))).*`,
            [JSON.stringify(t.other), t.column, keys.b],
          );
          if (write.code === null || write.code.startsWith('23')) {
            out.push(
              finding('probe.cross-tenant-write', {
                ...at,
                object: `${schema}.${t.table}`,
                message: `probe: as ${config.servingRole.name} with ${setting} = tenant A, a row with tenant B's key ${write.code ? `reached the constraints (${write.code})` : 'was inserted'} into ${schema}.${t.table}: no policy checked the written key`,
                fix: null,
              }),
            );
          }
          const collide = await attempt(
            c,
            `insert into ${q} select (jsonb_populate_record(null::${q}, $1::jsonb || jsonb_build_object($2::text, $3::text))).*`,
            [JSON.stringify(t.other), t.column, keys.a],
          );
          if (collide.code === '23505' && collide.constraint && t.keyless.includes(collide.constraint)) {
            out.push(
              finding('probe.unique-collision', {
                ...at,
                object: `${schema}.${t.table}`,
                message: `probe: tenant A inserting values of another tenant's row into ${schema}.${t.table} got a unique violation: the error tells A that someone else has that value`,
                fix: null,
              }),
            );
          }
        }
      }),
    );
    // The setting must not outlive its transaction on a pooled connection.
    await c.query('begin');
    await c.query('select set_config($1, $2, true)', [setting, keys.a]);
    await c.query('commit');
    const left = await c.query<{ v: string | null }>('select current_setting($1, true) as v', [setting]);
    if (left.rows[0].v) {
      out.push(
        finding('probe.setting-persists', {
          ...at,
          object: `setting ${setting}`,
          message: `probe: after a transaction that set ${setting} locally, the next transaction on the same connection still reads ${setting} = ${left.rows[0].v === keys.a ? 'tenant A' : 'a default (alter role/database … set)'}: a pooled connection carries a tenant into the next request`,
          fix: `alter role ${ident(config.servingRole.name)} reset ${setting}; alter database ${ident(unit.database)} reset ${setting};`,
        }),
      );
    }
  });
  if (refused) {
    // The applications cannot log in either: that is the finding, and the probes wait for the fix.
    return [
      finding('role.serving-password', {
        ...at,
        object: `role ${config.servingRole.name}`,
        message: `the serving role ${config.servingRole.name} refuses servingRole.password on ${unit.shard}: every pool tenant's application there is locked out. Any pool tenant can set the shared role's password through its own session (alter role current_user password …), and tenantctl cannot read it back; the live probes of ${schema} were skipped`,
        fix: `alter role ${ident(config.servingRole.name)} password '***'; -- servingRole.password of the config (tenantctl audit --fix sets it)`,
      }),
    ];
  }
  return out;
}

type AsServing = <T>(fn: () => Promise<T>) => Promise<T>;

/** Runs `fn` as the serving role; returns true (without running it) when the role refuses servingRole.password. */
async function withServingConnection(
  fleet: Fleet,
  config: Config,
  unit: AuditUnit,
  fn: (c: ShardClient, asServing: AsServing) => Promise<void>,
): Promise<boolean> {
  return fleet.withClient(unit.shard, unit.database, async (slot) => {
    const password = config.servingRole.password;
    if (!password) {
      await fn(slot, (f) => asRole(slot, config.servingRole.name, f));
      return false;
    }
    // Hand this slot's connection over to a serving-role login: close it and count the new one
    // in its place (the slot is released as broken, so it is not reused).
    slot.tenantctlBroken = true;
    await slot.end().catch(() => undefined);
    const c = new pg.Client({
      connectionString: servingRoleUrl(fleet.shard(unit.shard).url, unit.database, config),
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
      application_name: 'tenantctl-audit',
    }) as ShardClient;
    c.tenantctlDatabase = unit.database;
    watchConnection(c, shardPlace(unit.shard, fleet.shard(unit.shard).url, unit.database));
    try {
      await c.connect();
    } catch (err) {
      await c.end().catch(() => undefined);
      if ((err as { code?: string }).code === '28P01') return true;
      throw err;
    }
    try {
      await fn(c, (f) => f());
    } finally {
      await c.end().catch(() => undefined);
    }
    return false;
  });
}

/** A key of the configured type that no tenant has, for a neighbour when the pool has one tenant. */
export function probeKey(config: Config): string {
  switch (config.tenantKey.type) {
    case 'uuid':
      return randomUUID();
    case 'bigint':
      return '-4242424242';
    case 'text':
      return 'tenantctl-audit-probe';
  }
}

/** For each table, one row of a tenant other than A (tenantctl's own connection sees every row). */
export async function probeRows(
  c: ShardClient,
  schema: string,
  tables: { table: string; column: string }[],
  a: string,
  config: Config,
): Promise<ProbeTable[]> {
  const out: ProbeTable[] = [];
  for (const t of tables) {
    const r = await c.query<{ row: Record<string, unknown> }>(
      `select to_jsonb(x) as row from ${qualified(schema, t.table)} x where ${ident(t.column)} is distinct from $1::${config.tenantKey.type} limit 1`,
      [a],
    );
    const keyless = await c.query<{ name: string }>(
      `select ic.relname as name from pg_index i join pg_class ic on ic.oid = i.indexrelid
         join pg_attribute a on a.attrelid = i.indrelid and a.attname = $2
        where i.indisunique and i.indrelid = $1::regclass and not (a.attnum = any(i.indkey::int2[]))`,
      [qualified(schema, t.table), t.column],
    );
    out.push({ ...t, other: r.rows[0]?.row ?? null, keyless: keyless.rows.map((k) => k.name) });
  }
  return out;
}
