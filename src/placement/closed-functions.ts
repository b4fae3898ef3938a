import { ident } from '../sql.js';

/**
 * Functions PostgreSQL lets every role run that tenants need none of, and that let one tenant reach
 * past its own data. EXECUTE on them is the functions' owner's to take from PUBLIC (a superuser),
 * in every database (function privileges are per database; new databases copy template1's):
 * `dev up` does it on embedded clusters and grants them to the shard role by name, `doctor` warns
 * elsewhere and names the statements.
 */
export interface ClosedFunctions {
  /** For messages: `advisory locks`. */
  what: string;
  /** Each with its signature, as `pg_catalog.pg_advisory_lock(bigint)`. */
  functions: string[];
  /** What one tenant session did with them, for doctor's warning. */
  harm: string;
}

/**
 * Advisory locks, as many as a session likes, in ONE lock table per cluster (max_locks_per_transaction
 * × max_connections entries). Found by a tenant: `select count(pg_try_advisory_lock(1, i)) from
 * generate_series(1, 100000) i` as any tenant role (or through a pool's URL) filled it, kept its
 * session-level locks after the error, and every new connection to the shard then failed with "out
 * of shared memory": tenantctl's, the catalog's on that shard, the superuser's, every neighbour's. A
 * pool tenant could also hold a neighbour's write-fence key and have its writes refused as "paused:
 * tenantctl is moving it". tenantctl's own locks are the shard role's; a pool's write policies take
 * theirs through a SECURITY DEFINER function (pool/fence.ts). Only the functions that take a lock.
 */
export const ADVISORY_LOCKS: ClosedFunctions = {
  what: 'advisory locks',
  functions: [
    'pg_advisory_lock',
    'pg_advisory_lock_shared',
    'pg_advisory_xact_lock',
    'pg_advisory_xact_lock_shared',
    'pg_try_advisory_lock',
    'pg_try_advisory_lock_shared',
    'pg_try_advisory_xact_lock',
    'pg_try_advisory_xact_lock_shared',
  ].flatMap((f) => [`pg_catalog.${f}(bigint)`, `pg_catalog.${f}(integer, integer)`]),
  harm: "one tenant session can take enough to fill the cluster's lock table, and every new connection, tenantctl's and a superuser's included, then fails with \"out of shared memory\"",
};

/**
 * Making large objects. A tenant's large objects are outside its tables: `usage` cannot measure
 * them (pg_largeobject is the superuser's to read), so 34 MB of them went past a storage quota;
 * `backup create` and `move` refuse a tenant that owns one (LARGE_OBJECTS), so a tenant made one to
 * opt out of the nightly backups; and one granted to a neighbour opens its bytes to it. Server-side
 * `lo_import` is the superuser's already; libpq's client-side large objects call these too.
 */
export const LARGE_OBJECTS: ClosedFunctions = {
  what: 'large objects',
  functions: ['pg_catalog.lo_creat(integer)', 'pg_catalog.lo_create(oid)', 'pg_catalog.lo_from_bytea(oid, bytea)'],
  harm: 'a tenant can make large objects, which usage cannot measure (a quota bypass), which refuse its backups and moves, and which it can grant to a neighbour',
};

export const CLOSED_FUNCTIONS: ClosedFunctions[] = [ADVISORY_LOCKS, LARGE_OBJECTS];

/** What a superuser runs in one database: PUBLIC loses them, the shard role keeps them by name. */
export function closeFunctionsSql(group: ClosedFunctions, shardRole: string): string {
  const fns = group.functions.join(', ');
  return `revoke execute on function ${fns} from public; grant execute on function ${fns} to ${ident(shardRole)}`;
}

/** Of the group's functions in this database, those PUBLIC may run (`lo_create(oid)`), as one text[] column `open`. */
export function publicFunctionsSql(group: ClosedFunctions): string {
  const list = group.functions.map((f) => `'${f}'::regprocedure`).join(', ');
  return `select coalesce(array_agg(f::text order by f::text), '{}') as open
            from unnest(array[${list}]) as f
           where has_function_privilege('public', f, 'execute')`;
}
