import { ident } from '../sql.js';

/**
 * PostgreSQL lets every role take advisory locks, as many as it likes, and they share ONE lock
 * table per cluster (max_locks_per_transaction × max_connections entries). Found by a tenant:
 * `select count(pg_try_advisory_lock(1, i)) from generate_series(1, 100000) i` as any tenant role
 * (or through a pool's URL) filled it, kept its session-level locks after the error, and every new
 * connection to the shard then failed with "out of shared memory": tenantctl's, the catalog's on
 * that shard, the superuser's, every neighbour's. A pool tenant could also hold a neighbour's
 * write-fence key and have its writes refused as "paused: tenantctl is moving it".
 *
 * Tenants need none of these functions: tenantctl's own locks are taken by the shard role, and a
 * pool's write policies take theirs through a SECURITY DEFINER function (pool/fence.ts). Taking
 * EXECUTE from PUBLIC is for the functions' owner, a superuser, in every database (function
 * privileges are per database; new databases copy template1's): `dev up` does it on embedded
 * clusters, `doctor` names the statements elsewhere. Only the functions that take a lock: an
 * unlock frees what the session holds.
 */
const LOCKING = [
  'pg_advisory_lock',
  'pg_advisory_lock_shared',
  'pg_advisory_xact_lock',
  'pg_advisory_xact_lock_shared',
  'pg_try_advisory_lock',
  'pg_try_advisory_lock_shared',
  'pg_try_advisory_xact_lock',
  'pg_try_advisory_xact_lock_shared',
] as const;

/** Each locking function with both its signatures, as `pg_catalog.pg_advisory_lock(bigint)`. */
export const ADVISORY_LOCK_FUNCTIONS: string[] = LOCKING.flatMap((f) => [`pg_catalog.${f}(bigint)`, `pg_catalog.${f}(integer, integer)`]);

/** What a superuser runs in one database: PUBLIC loses them, the shard role keeps them by name. */
export function closeAdvisoryLocksSql(shardRole: string): string {
  const fns = ADVISORY_LOCK_FUNCTIONS.join(', ');
  return `revoke execute on function ${fns} from public; grant execute on function ${fns} to ${ident(shardRole)}`;
}

/** Of this database's locking advisory functions, those PUBLIC may run (`pg_try_advisory_lock(bigint)`). */
export const PUBLIC_ADVISORY_SQL = `
  select coalesce(array_agg(p.oid::regprocedure::text order by p.oid::regprocedure::text), '{}') as open
    from pg_proc p
   where p.pronamespace = 'pg_catalog'::regnamespace
     and p.proname = any(array[${LOCKING.map((f) => `'${f}'`).join(', ')}])
     and has_function_privilege('public', p.oid, 'execute')`;
