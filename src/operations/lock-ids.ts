/**
 * Every advisory-lock class id tenantctl takes, in one place, so no two features ever share a
 * key by accident. Each is four ASCII letters read as a big-endian int4 (`'tnfl'` = 0x746e666c);
 * the second key is a run id, `hashtext(slug)` or `hashtext(schema)`.
 *
 * Catalog database:
 *   FLEET  'tnfl'  the fleet run lock of `migrate up` (exclusive, or shared plus a slice lock)
 *   RUN    'tnrn'  one migrate run, keyed by its id (held while it runs: a free one means crashed)
 *   TENANT 'tntn'  one tenant's operation lock, keyed by hashtext(slug)
 *   PARTITION 'tnpt' a CI matrix's recorded split, keyed by hashtext(partition key), per transaction
 *   ARCHIVE 'tarc' one backup archive in use, keyed by hashtext(backup id): shared by each restore
 *     reading it, exclusive while `backup prune` deletes it (src/backup/archive-in-use.ts)
 * Each target database:
 *   MIGRATION 'tnct'  one migration target, keyed by hashtext(schema)
 *   DATABASE_ACL 'tacl' serialises GRANTs on one database (taken in src/placement/roles.ts)
 *   FENCE_SETUP 'tfnc' serialises creating the write-fence functions of a database, key 0
 *     (src/placement/fence-function.ts; taken only when a function is missing or outdated)
 * Each pool database:
 *   POOL_SUSPEND 'tsus' serialises every setup of the pool's write policies, key 0: the suspension state
 *     (src/placement/pool/suspend.ts) and the fence function and policies (src/placement/pool/fence.ts)
 *
 * @module
 */
export const FLEET_LOCK_CLASSID = 0x746e666c;
export const RUN_LOCK_CLASSID = 0x746e726e;
export const TENANT_LOCK_CLASSID = 0x746e746e;
export const PARTITION_LOCK_CLASSID = 0x746e7074;
export const ARCHIVE_LOCK_CLASSID = 0x74617263;
export const MIGRATION_LOCK_CLASSID = 0x746e6374;
export const DATABASE_ACL_LOCK_CLASSID = 0x7461636c;
export const POOL_SUSPEND_LOCK_CLASSID = 0x74737573;
export const FENCE_SETUP_LOCK_CLASSID = 0x74666e63;
