import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { UsageError } from '../errors.js';
import { loadMigrations, NO_TRANSACTION_MARKER } from './files.js';

/**
 * `migrate create <name>`: write the next-numbered migration file. The folder is checked first
 * (the same rules as every other migrate command), the name must be lower_snake, and an existing
 * file is never overwritten.
 *
 * @example
 *   await createMigrationFile('migrations', 'add_archived_at') // '.../migrations/0004_add_archived_at.sql'
 */
export const MIGRATION_NAME = /^[a-z][a-z0-9]*(?:_[a-z0-9]+)*$/;

export interface CreateOptions {
  /** A Kysely module (`.ts`) instead of SQL. */
  ts?: boolean;
  /** Runs outside a transaction (for CREATE INDEX CONCURRENTLY). */
  noTransaction?: boolean;
}

export async function createMigrationFile(dir: string, name: string, opts: CreateOptions = {}): Promise<string> {
  if (!MIGRATION_NAME.test(name) || name.length > 60) {
    const suggestion = name
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, '_')
      .replace(/^[^a-z]+|_+$/g, '')
      .slice(0, 60);
    throw new UsageError(
      'BAD_INPUT',
      `migration name ${JSON.stringify(name)} is not lower_snake_case (lowercase letters, digits and single underscores, starting with a letter, at most 60 characters)`,
      suggestion ? `e.g. tenantctl migrate create ${suggestion}` : 'e.g. tenantctl migrate create add_archived_at',
    );
  }
  await mkdir(dir, { recursive: true });
  const existing = await loadMigrations(dir);
  // Two files of one name apply in number order but read as one change in every report and hint
  // (`migrate create` run twice by mistake, or a copy-paste): the second is refused.
  const same = existing.find((m) => m.name === name);
  if (same) {
    throw new UsageError(
      'MIGRATION_FILES',
      `${dir} already has a migration named ${name}: ${same.file}; nothing was written`,
      same.number === existing.at(-1)?.number
        ? `edit ${same.file} if it is applied nowhere yet, or pick another name`
        : `pick another name (e.g. ${name}_2)`,
    );
  }
  const next = (existing.at(-1)?.number ?? 0) + 1;
  if (next > 9999) throw new UsageError('MIGRATION_FILES', `${dir} already has migration 9999`, 'migration numbers have four digits');
  const id = `${String(next).padStart(4, '0')}_${name}`;
  const file = join(dir, `${id}.${opts.ts ? 'ts' : 'sql'}`);
  try {
    await writeFile(file, template(id, opts), { flag: 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new UsageError('MIGRATION_FILES', `${file} already exists`, 'nothing was overwritten; pick another name');
    }
    throw err;
  }
  return file;
}

function template(id: string, opts: CreateOptions): string {
  if (opts.ts) {
    return [
      `// ${id}: applied to every pool, schema and database target by tenantctl migrate up.`,
      `// search_path is the target schema: name tables without a schema.`,
      `import type { Kysely } from 'kysely';`,
      ``,
      ...(opts.noTransaction
        ? [
            `// Runs outside a transaction (e.g. CREATE INDEX CONCURRENTLY); make each step idempotent.`,
            `export const transaction = false;`,
            ``,
          ]
        : []),
      `export async function up(db: Kysely<any>): Promise<void> {`,
      `  // await db.schema.alterTable('tasks').addColumn('archived_at', 'timestamptz').execute();`,
      `}`,
      ``,
    ].join('\n');
  }
  return [
    ...(opts.noTransaction
      ? [NO_TRANSACTION_MARKER, `-- Runs outside a transaction, statement by statement: make each one idempotent (if not exists).`]
      : []),
    `-- ${id}: applied to every pool, schema and database target by tenantctl migrate up.`,
    `-- search_path is the target schema: name tables without a schema. {{tenant_key_column}} and`,
    `-- {{tenant_key_type}} are the configured tenant key. Once applied anywhere, never edit this`,
    `-- file (that is drift): put changes in a new migration.`,
    ``,
    ``,
  ].join('\n');
}
