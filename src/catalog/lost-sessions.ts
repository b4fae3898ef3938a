/**
 * The catalog sessions this process saw lost (the server gone, an administrator's
 * pg_terminate_backend), by backend pid, per catalog handle. The lock session (its session-level
 * advisory locks die with its connection) asks here, without a round trip, whether the locks it
 * took are still held: src/operations/lock-session.ts.
 */
const lostByCatalog = new WeakMap<object, { lost: Set<number>; where: string }>();

/**
 * The set a catalog's connection watcher fills (src/catalog/open.ts), registered for that catalog
 * with how it is named in errors (`the catalog (on shard us1, host:port/database)`).
 */
export function registerLostSessions(catalog: object, lost: Set<number>, where: string): void {
  lostByCatalog.set(catalog, { lost, where });
}

/** Whether the catalog session with this backend pid was lost. */
export function isCatalogSessionLost(catalog: object, pid: number | undefined): boolean {
  return pid !== undefined && (lostByCatalog.get(catalog)?.lost.has(pid) ?? false);
}

/** How the catalog is named in errors, or `the catalog` when it was not registered. */
export function catalogPlaceOf(catalog: object | undefined): string {
  return (catalog && lostByCatalog.get(catalog)?.where) ?? 'the catalog';
}
