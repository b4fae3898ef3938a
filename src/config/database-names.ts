// Database names the config check must know (a shard's database list may not take them), declared
// here, below everything, so config/ imports nothing above it; src/placement/ names with them.

/** The cluster's maintenance database, where tenantctl creates and drops databases. */
export const ADMIN_DATABASE = 'postgres';

/** What a database tenant's own database name starts with (`t_<slug>`, src/placement/naming.ts). */
export const TENANT_DATABASE_PREFIX = 't_';
