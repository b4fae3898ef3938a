/**
 * Statements of a no-transaction file that build or drop an index CONCURRENTLY. They take only
 * SHARE UPDATE EXCLUSIVE on the table, so while they wait the application's reads and writes go
 * on; but they wait for every older transaction in the database, and a lock_timeout that ends
 * such a wait leaves an INVALID index behind (a retry then finds the name taken, or skips it with
 * IF NOT EXISTS). They run without the short migrations.lockTimeout, bounded by the statement
 * timeout instead.
 *
 * @example waitsWithoutBlocking('create unique index concurrently x on t (a)') // true
 */
export function waitsWithoutBlocking(statement: string): boolean {
  return CONCURRENT.test(statement);
}

/** Leading comments are already dropped by splitStatements. */
const CONCURRENT =
  /^\s*(create\s+(unique\s+)?index\s+concurrently|drop\s+index\s+concurrently|reindex\s+(\([^)]*\)\s*)?(index|table|schema|database|system)\s+concurrently)\b/i;

/**
 * The index a `create [unique] index concurrently if not exists <name>` builds, when unqualified
 * (it lands in the target's schema): the name its earlier failed build may have left INVALID.
 * null for any other statement.
 *
 * @example builtIfMissing('create unique index concurrently if not exists users_email on users (email)') // 'users_email'
 */
export function builtIfMissing(statement: string): string | null {
  const m = /^\s*create\s+(?:unique\s+)?index\s+concurrently\s+if\s+not\s+exists\s+("(?:[^"]|"")+"|[a-z_][\w$]*)\s+on\b/i.exec(statement);
  if (!m) return null;
  const name = m[1];
  return name.startsWith('"') ? name.slice(1, -1).replace(/""/g, '"') : name.toLowerCase();
}
