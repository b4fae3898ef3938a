/**
 * What a tier's limits become in PostgreSQL: the settings (names and values as PostgreSQL keeps
 * them) and the connection limit. Pure; src/placement/limits.ts applies them to a tenant's role
 * and database, src/placement/resolve.ts puts them in a pool tenant's URL.
 *
 * @module
 */
import { limitDurationMs, sizeBytes, type TierLimits } from '../config/tier-limits.js';

/** The settings tenantctl manages on a tenant role; any other setting (search_path) is left alone. */
export const LIMIT_SETTINGS = [
  'statement_timeout',
  'lock_timeout',
  'idle_in_transaction_session_timeout',
  'work_mem',
  'temp_file_limit',
] as const;
export type LimitSetting = (typeof LIMIT_SETTINGS)[number];

/**
 * Settings only a superuser, or a role granted `SET ON PARAMETER` (PostgreSQL 15+), may set: a
 * tenant role cannot change them for itself, and a pool tenant's URL cannot carry them (the
 * serving role's connection would be refused).
 */
export const SUPERUSER_SETTINGS: readonly LimitSetting[] = ['temp_file_limit'];

/**
 * The tier's settings, in the form PostgreSQL stores them in pg_db_role_setting (so what is there
 * compares as text): timeouts in ms, memory in kB. Settings the tier leaves out are absent.
 *
 * @example
 *   limitSettings({ statementTimeout: '5s', workMem: '4MB' }) // { statement_timeout: '5000', work_mem: '4096kB' }
 */
export function limitSettings(tier: TierLimits): Partial<Record<LimitSetting, string>> {
  const out: Partial<Record<LimitSetting, string>> = {};
  const ms = (v: string | undefined) => (v === undefined ? undefined : String(limitDurationMs(v)));
  const kb = (v: string | number | undefined) => (v === undefined ? undefined : `${(sizeBytes(v) ?? 0) / 1024}kB`);
  const values: Record<LimitSetting, string | undefined> = {
    statement_timeout: ms(tier.statementTimeout),
    lock_timeout: ms(tier.lockTimeout),
    idle_in_transaction_session_timeout: ms(tier.idleInTransactionTimeout),
    work_mem: kb(tier.workMem),
    temp_file_limit: kb(tier.tempFileLimit),
  };
  for (const k of LIMIT_SETTINGS) if (values[k] !== undefined) out[k] = values[k];
  return out;
}

/** The role's CONNECTION LIMIT for the tier: -1 (none) when the tier sets none. */
export function roleConnectionLimit(tier: TierLimits): number {
  return tier.connectionLimit ?? -1;
}

/**
 * libpq `options` for a connection that carries the tier's limits itself (a pool tenant's, on the
 * shared serving role): `-c name=value` for each setting a session may set for itself.
 *
 * @example
 *   sessionOptions({ statementTimeout: '5s' }) // ['-c statement_timeout=5000']
 */
export function sessionOptions(tier: TierLimits): string[] {
  return Object.entries(limitSettings(tier))
    .filter(([k]) => !SUPERUSER_SETTINGS.includes(k as LimitSetting))
    .map(([k, v]) => `-c ${k}=${v}`);
}
