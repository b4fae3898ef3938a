import { TENANT_LOCK_CLASSID } from '../../src/operations/lock-ids.js';
import type { MigrateEnv } from './migrate-env.js';

/**
 * End the catalog session that holds tenant locks in this env's catalog (on us1), as an
 * administrator's pg_terminate_backend or a failover would: its locks go with it. Only this
 * env's catalog database (pg_locks is cluster-wide, and other files' catalogs share the fleet).
 * Returns one `{ ok }` per session ended.
 */
export function endLockSession(e: MigrateEnv): Promise<{ ok: boolean }[]> {
  return e.q(
    'us1',
    `cat_${e.name}`,
    `select pg_terminate_backend(pid) as ok from pg_locks
      where locktype = 'advisory' and granted and classid = $1::int::oid
        and database = (select oid from pg_database where datname = current_database())`,
    [TENANT_LOCK_CLASSID],
  ) as Promise<{ ok: boolean }[]>;
}
