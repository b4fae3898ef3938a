// THE rule for which tables are tenant-scoped, as SQL (every query that picks a tenant's tables,
// in placement/, copy/ and audit/, uses it): a table (or partition) is scoped when it has the key
// column named for it in `tenantKey.tables`, or for a partition the one named for its partition
// root, or else `tenantKey.column`. A partition of an overridden table is keyed by its root's
// column: before this was one fragment, row-level security and the audit disagreed on it.

/**
 * The key column a relation is scoped by, as an SQL expression. `rel`: the pg_class alias;
 * `overrides`: the parameter holding `JSON.stringify(tenantKey.tables ?? {})` (jsonb); `column`:
 * the one holding tenantKey.column.
 *
 * @example
 *   `... and a.attname = ${scopedKeyColumn('c', '$2', '$3')}`
 */
export function scopedKeyColumn(rel: string, overrides: string, column: string): string {
  return `coalesce(${overrides}::jsonb ->> ${rel}.relname::text,
           (select ${overrides}::jsonb ->> root.relname::text from pg_class root
             where ${rel}.relispartition and root.oid = pg_partition_root(${rel}.oid)::oid),
           ${column})`;
}

/** The two parameters `scopedKeyColumn` reads, in order. */
export function scopedRuleParams(config: { tenantKey: { column: string; tables?: Record<string, string> } }): [string, string] {
  return [JSON.stringify(config.tenantKey.tables ?? {}), config.tenantKey.column];
}
