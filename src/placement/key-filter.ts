import { ident, literal } from '../sql.js';

/**
 * The condition that selects one tenant's rows by its key column: THE tenant-key filter (the
 * drivers of shared-tables models return it from `keyFilter`; nothing else writes one).
 * A literal key is quoted and cast to the key type, so the key-column indexes serve it and a
 * malformed key fails the cast, never the quoting (COPY and publications take no parameters).
 * A parameter (`{ param: '$1' }`) is cast the same way, or (no key type) typed by PostgreSQL as the column. `rel`: the table's alias in the statement.
 *
 * @example
 *   keyCondition('tenant_id', 'bigint', '42')             // "\"tenant_id\" = '42'::bigint"
 *   keyCondition('tenant_id', 'bigint', { param: '$1' })  // "\"tenant_id\" = $1::bigint"
 */
export function keyCondition(column: string, keyType: string, key: string | { param: string }, rel?: string): string {
  const col = `${rel ? `${rel}.` : ''}${ident(column)}`;
  return typeof key === 'string' ? `${col} = ${literal(key)}::${keyType}` : `${col} = ${key.param}${keyType ? `::${keyType}` : ''}`;
}
