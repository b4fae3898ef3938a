/**
 * The catalog sessions this process saw lost (the server gone, an administrator's
 * pg_terminate_backend), by backend pid, per catalog handle. The lock session (its session-level
 * advisory locks die with its connection) asks here, without a round trip, whether the locks it
 * took are still held: src/operations/lock-session.ts.
 */
const lostByCatalog = new WeakMap<object, Set<number>>();

/** The set a catalog's connection watcher fills (src/catalog/open.ts), registered for that catalog. */
export function registerLostSessions(catalog: object, lost: Set<number>): void {
  lostByCatalog.set(catalog, lost);
}

/** Whether the catalog session with this backend pid was lost. */
export function isCatalogSessionLost(catalog: object, pid: number | undefined): boolean {
  return pid !== undefined && (lostByCatalog.get(catalog)?.has(pid) ?? false);
}
