/**
 * Connection limits shared by the catalog and the fleet. A leaf module: both src/catalog/ and
 * src/fleet/ import it, so neither imports the other's constants (they used to, a cycle).
 */

/** Connections the catalog may hold; counted against its shard's budget (see Fleet). */
export const CATALOG_POOL_SIZE = 2;

/**
 * Connections one tenant operation holds at most on one shard, besides the catalog's: a move
 * between models on the same shard holds the write fence of a pool source (its advisory lock is a
 * session's), the source's snapshot (read while the target loads and is verified against it), and
 * the target (or, before it, the maintenance database to create a database tenant's database).
 * A smaller budget would make such a command wait for itself forever; the config check refuses it.
 */
export const MIN_SHARD_CONNECTIONS = 3;

/** How long a new connection to a shard or the catalog may take before it counts as unreachable. */
export const CONNECT_TIMEOUT_MS = Number(process.env.TENANTCTL_CONNECT_TIMEOUT_MS ?? 5000);
