import { ident, literal } from '../sql.js';

/**
 * The transaction-local search_path of a target's schema (its schema, then public), as a
 * set_config call: what migrations run with, so what the application's own functions and
 * triggers there were written for. tenantctl's writes into a pool (a load, a tenant's removal)
 * fire those triggers too: a trigger inserting into an unqualified `audit_log` failed `tenant
 * delete` and `move complete` with "relation audit_log does not exist" under tenantctl's default
 * path. tenantctl's own statements qualify every name, so the path changes nothing of theirs.
 */
export function searchPathSetting(schema: string): string {
  return `set_config('search_path', ${literal(`${ident(schema)}, public`)}, true)`;
}
