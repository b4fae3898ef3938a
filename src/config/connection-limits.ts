/**
 * Connection limits shared by the catalog and the fleet. A leaf module: both src/catalog/ and
 * src/fleet/ import it, so neither imports the other's constants (they used to, a cycle).
 */

/** Connections the catalog may hold; counted against its shard's budget (see Fleet). */
export const CATALOG_POOL_SIZE = 2;

/** How long a new connection to a shard or the catalog may take before it counts as unreachable. */
export const CONNECT_TIMEOUT_MS = Number(process.env.TENANTCTL_CONNECT_TIMEOUT_MS ?? 5000);
