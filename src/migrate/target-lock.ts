import { MIGRATION_LOCK_CLASSID } from '../operations/lock-ids.js';
import { literal } from '../sql.js';

/**
 * The per-target advisory lock of the migration engine: classid MIGRATION_LOCK_CLASSID ('tnct'),
 * objid hashtext(schema), in the target's database. Never one key per database, so the schemas
 * of one database migrate in parallel, and one schema never twice.
 *
 * Tenants can connect to that database, so a caller that holds the tenant's own lock (in the
 * catalog, out of tenants' reach) passes `tenantLocked` and this lock is not taken at all; the
 * pool's target, which has no tenant lock, takes it and fails at once when a session that is not
 * tenantctl's holds it (src/operations/lock-holder.ts).
 */

/** `fn(classid, hashtext('schema'))` with literal values, for SQL text sent in one message. */
export function targetLockSql(fn: 'pg_try_advisory_lock' | 'pg_advisory_xact_lock' | 'pg_advisory_unlock', schema: string): string {
  return `${fn}(${MIGRATION_LOCK_CLASSID}, hashtext(${literal(schema)}))`;
}
