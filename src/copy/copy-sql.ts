import type { Config } from '../config/types.js';
import { ident, literal, qualified } from '../sql.js';
import type { CopyScope, CopyTable } from './tables.js';

/**
 * The COPY statements of a copy. COPY takes no parameters, so the key goes in as a quoted
 * literal cast to the configured key type (a malformed key fails the cast, never the quoting).
 */
export function copyOutSql(t: CopyTable, scope: CopyScope, config: Pick<Config, 'tenantKey'>): string {
  const cols = t.columns.map(ident).join(', ');
  const from = qualified(scope.schema, t.table);
  if (scope.model !== 'pool') return `copy (select ${cols} from ${from}) to stdout`;
  return `copy (select ${cols} from ${from} where ${ident(t.keyColumn)} = ${literal(scope.key)}::${config.tenantKey.type}) to stdout`;
}

export function copyInSql(t: CopyTable, schema: string): string {
  return `copy ${qualified(schema, t.table)} (${t.columns.map(ident).join(', ')}) from stdin`;
}
