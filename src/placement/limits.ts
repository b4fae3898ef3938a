/**
 * A tenant's tier limits where PostgreSQL enforces them (issue 19): its own role's CONNECTION
 * LIMIT and settings IN its placement's DATABASE (the most specific level a role setting has, so
 * it wins over the role's own role-wide ones), and for a database of its own that database's
 * CONNECTION LIMIT. Models without a role of their own (pool) carry their limits in the
 * connection URL instead (resolve.ts). Everything is read from and written to shared catalogs
 * (pg_roles, pg_database, pg_db_role_setting), so one connection to the maintenance database
 * serves every tenant of a shard.
 *
 * @module
 */
import type { ShardClient } from '../fleet/shard-connections.js';
import { TenantctlError } from '../errors.js';
import { ident, literal } from '../sql.js';
import { LIMIT_SETTINGS, limitSettings, roleConnectionLimit, SUPERUSER_SETTINGS, type LimitSetting } from '../limits/settings.js';
import type { TierLimits } from '../config/tier-limits.js';
import { MODEL_TRAITS, tenantRole, type CatalogPlacement } from './placement.js';

/** Where a tenant's limits go: its role, the database its settings are scoped to, and whether that database is its own. */
export interface LimitTarget {
  slug: string;
  role: string;
  database: string;
  ownDatabase: boolean;
}

/** The tenant's limit target, or null when its model gives it no role (its limits ride in its URL). */
export function limitTarget(t: CatalogPlacement): LimitTarget | null {
  const role = tenantRole(t);
  if (!role) return null;
  return { slug: t.slug, role, database: t.database_name, ownDatabase: MODEL_TRAITS[t.model].ownDatabase };
}

/** What PostgreSQL holds for a limit target now. */
export interface LimitState {
  roleExists: boolean;
  roleConnectionLimit: number | null;
  databaseConnectionLimit: number | null;
  /** Managed settings of the role in the placement's database. */
  inDatabase: Partial<Record<LimitSetting, string>>;
  /** Managed settings of the role for every database (e.g. the tenant's own ALTER ROLE CURRENT_USER SET). */
  roleWide: Partial<Record<LimitSetting, string>>;
}

/** What the tier asks for a target. */
export interface DesiredLimits {
  roleConnectionLimit: number;
  /** Own database only: the tenant's limit plus the shard's budget, so tenantctl's own work is never locked out. */
  databaseConnectionLimit: number | null;
  settings: Partial<Record<LimitSetting, string>>;
}

export function desiredLimits(target: LimitTarget, tier: TierLimits, shardBudget: number): DesiredLimits {
  const role = roleConnectionLimit(tier);
  return {
    roleConnectionLimit: role,
    databaseConnectionLimit: target.ownDatabase ? (role < 0 ? -1 : role + shardBudget) : null,
    settings: limitSettings(tier),
  };
}

/** One difference between the tier and the database, with the statement that removes it. */
export interface LimitChange {
  what: string;
  from: string | null;
  to: string | null;
  sql: string;
}

/**
 * The differences, as statements. Pure.
 *
 * @example
 *   limitChanges(target, { roleConnectionLimit: 5, databaseConnectionLimit: null, settings: {} }, state)
 *   // [{ what: 'role connection limit', from: '-1', to: '5', sql: 'alter role "tenant_acme" connection limit 5' }]
 */
export function limitChanges(target: LimitTarget, want: DesiredLimits, now: LimitState): LimitChange[] {
  const out: LimitChange[] = [];
  const r = ident(target.role);
  const d = ident(target.database);
  const text = (n: number | null) => (n === null ? null : String(n));
  if (now.roleConnectionLimit !== want.roleConnectionLimit) {
    out.push({
      what: 'role connection limit',
      from: text(now.roleConnectionLimit),
      to: String(want.roleConnectionLimit),
      sql: `alter role ${r} connection limit ${want.roleConnectionLimit}`,
    });
  }
  if (want.databaseConnectionLimit !== null && now.databaseConnectionLimit !== want.databaseConnectionLimit) {
    out.push({
      what: 'database connection limit',
      from: text(now.databaseConnectionLimit),
      to: String(want.databaseConnectionLimit),
      sql: `alter database ${d} connection limit ${want.databaseConnectionLimit}`,
    });
  }
  for (const k of LIMIT_SETTINGS) {
    const to = want.settings[k] ?? null;
    const from = now.inDatabase[k] ?? null;
    if (to !== from) {
      out.push({
        what: k,
        from,
        to,
        sql: to === null ? `alter role ${r} in database ${d} reset ${k}` : `alter role ${r} in database ${d} set ${k} = ${literal(to)}`,
      });
    }
    // tenantctl sets nothing role-wide: a managed setting there was set by someone else (the
    // tenant on itself); it does not win over the database-level one, but it is not the tier's.
    const wide = now.roleWide[k];
    if (wide !== undefined) out.push({ what: `${k} (role-wide)`, from: wide, to: null, sql: `alter role ${r} reset ${k}` });
  }
  return out;
}

/**
 * The state of many targets of one shard in one query, keyed by slug. Run on any database of
 * the shard (the catalogs read are cluster-wide).
 */
export async function readLimitStates(c: ShardClient, targets: LimitTarget[]): Promise<Map<string, LimitState>> {
  const { rows } = await c.query<{
    slug: string;
    role_exists: boolean;
    rolconnlimit: number | null;
    datconnlimit: number | null;
    in_db: string[] | null;
    role_wide: string[] | null;
  }>(
    `select x.slug, r.oid is not null as role_exists, r.rolconnlimit, d.datconnlimit,
            (select array_agg(cfg) from pg_db_role_setting s, unnest(s.setconfig) cfg
              where s.setrole = r.oid and s.setdatabase = d.oid and split_part(cfg, '=', 1) = any($4::text[])) as in_db,
            (select array_agg(cfg) from pg_db_role_setting s, unnest(s.setconfig) cfg
              where s.setrole = r.oid and s.setdatabase = 0 and split_part(cfg, '=', 1) = any($4::text[])) as role_wide
       from unnest($1::text[], $2::text[], $3::text[]) as x(slug, role, db)
       left join pg_roles r on r.rolname = x.role
       left join pg_database d on d.datname = x.db`,
    // Only the settings tenantctl manages leave the server: a tenant may store hundreds of MB in
    // a setting of its own (alter role current_user set application_name = …), more than a string holds.
    [targets.map((t) => t.slug), targets.map((t) => t.role), targets.map((t) => t.database), [...LIMIT_SETTINGS]],
  );
  const out = new Map<string, LimitState>();
  for (const row of rows) {
    out.set(row.slug, {
      roleExists: row.role_exists,
      roleConnectionLimit: row.rolconnlimit,
      databaseConnectionLimit: row.datconnlimit,
      inDatabase: managed(row.in_db),
      roleWide: managed(row.role_wide),
    });
  }
  return out;
}

function managed(config: string[] | null): Partial<Record<LimitSetting, string>> {
  const out: Partial<Record<LimitSetting, string>> = {};
  for (const item of config ?? []) {
    const eq = item.indexOf('=');
    const k = item.slice(0, eq) as LimitSetting;
    if (LIMIT_SETTINGS.includes(k)) out[k] = item.slice(eq + 1);
  }
  return out;
}

/**
 * Run the changes in ONE round trip and one transaction (a multi-statement simple query is
 * atomic): a limit PostgreSQL refuses leaves every other limit as it was. A refusal names the
 * setting and why, with the fix.
 */
export async function applyLimitChanges(c: ShardClient, target: LimitTarget, changes: LimitChange[]): Promise<void> {
  if (changes.length === 0) return;
  try {
    await c.query(changes.map((ch) => `${ch.sql};`).join('\n'));
  } catch (err) {
    throw refusal(target, changes, err);
  }
}

function refusal(target: LimitTarget, changes: LimitChange[], err: unknown): unknown {
  const e = err as { code?: string; message?: string };
  if (e.code !== '42501' && e.code !== '22023' && e.code !== '42704') return err;
  const which = changes.find((ch) => e.message?.includes(`"${ch.what.split(' ')[0]}"`))?.what;
  const superuserOnly = which && SUPERUSER_SETTINGS.includes(which as LimitSetting);
  // The fix goes in the message too: a fan-out's result row keeps the message, not the hint.
  const fix = superuserOnly
    ? `${which} is a superuser-only setting: a superuser runs GRANT SET ON PARAMETER ${which} TO <tenantctl's shard role> (PostgreSQL 15+), or remove it from the tier`
    : "give tenantctl's shard role the privilege named, or remove the limit from the tier";
  return new TenantctlError(
    'LIMIT_REFUSED',
    `PostgreSQL refused ${which ?? 'a limit'} for role ${target.role} (tenant ${target.slug}): ${e.message}; nothing of its limits was changed. ${fix}`,
    fix,
    undefined,
    { cause: err },
  );
}
