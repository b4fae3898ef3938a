import { createHash } from 'node:crypto';
import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, extname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Kysely } from 'kysely';
import { UsageError, errorMessage } from '../errors.js';
import { transactionControl } from './transaction-control.js';
import { unknownPlaceholders, PLACEHOLDERS } from './template.js';

/**
 * The migration files of `migrations/` (or any folder), read once per command and applied to
 * every target.
 *
 * Names are `NNNN_lower_snake.ext`: four digits, then lowercase words joined by `_`; `.sql` files
 * run as SQL, `.ts`, `.js` and `.mjs` files are modules exporting `up(db: Kysely<any>)`.
 *
 * A `.sql` file whose first line is `-- tenantctl:no-transaction` runs outside a transaction,
 * statement by statement (for CREATE INDEX CONCURRENTLY); a module says the same with
 * `export const transaction = false`.
 */
export type MigrationKind = 'sql' | 'module';

export interface MigrationFile {
  /** `0004_add_archived_at`: the file name without extension; the name in tracking tables. */
  id: string;
  /** 4 from `0004_add_archived_at`. */
  number: number;
  /** `add_archived_at` */
  name: string;
  /** Absolute path. */
  file: string;
  kind: MigrationKind;
  /** sha256 (hex) of the file's raw bytes, before any placeholder substitution. */
  checksum: string;
  /**
   * Whether it runs inside a transaction. For modules this is read from the source text
   * (`export const transaction = false`) for planning; the imported module's export decides.
   */
  transactional: boolean;
  /** The raw SQL text (sql kind only). */
  sql?: string;
}

/** What a module migration exports. */
export interface MigrationModule {
  up: (db: Kysely<any>) => Promise<void>;
  transaction?: boolean;
}

export const NO_TRANSACTION_MARKER = '-- tenantctl:no-transaction';
const NAME = /^(\d{4})_([a-z][a-z0-9]*(?:_[a-z0-9]+)*)\.(sql|ts|js|mjs)$/;
const CANDIDATE_EXT = new Set(['.sql', '.ts', '.js', '.mjs', '.mts', '.cjs', '.cts']);
const MODULE_NO_TX = /^\s*export\s+const\s+transaction\s*(?::\s*boolean\s*)?=\s*false\b/m;

/**
 * Read, check and sort every migration in `dir`. All problems are reported at once in one
 * UsageError('MIGRATION_FILES'), each with its file and the fix.
 *
 * @example
 *   const migrations = await loadMigrations(config.migrationsDir);
 *   migrations.map((m) => m.id) // ['0001_workspaces_and_users', '0002_projects_and_tasks', ...]
 */
export async function loadMigrations(dir: string): Promise<MigrationFile[]> {
  const folder = resolve(dir);
  const entries = await folderEntries(folder);

  const problems: string[] = [];
  const found: Array<{ file: string; number: number; name: string; ext: string }> = [];
  for (const entry of entries.sort()) {
    if (entry.startsWith('.')) continue;
    const ext = extname(entry);
    const looksLikeMigration = /^\d/.test(entry) || (CANDIDATE_EXT.has(ext) && !entry.endsWith('.d.ts'));
    const m = NAME.exec(entry);
    if (!m) {
      if (looksLikeMigration) {
        problems.push(`${entry}: bad name; name migrations NNNN_lower_snake.sql (or .ts, .js, .mjs), e.g. 0004_add_archived_at.sql`);
      }
      continue;
    }
    found.push({ file: join(folder, entry), number: Number(m[1]), name: m[2], ext: m[3] });
  }

  const byNumber = new Map<number, string[]>();
  for (const f of found) byNumber.set(f.number, [...(byNumber.get(f.number) ?? []), basename(f.file)]);
  for (const [num, files] of byNumber) {
    if (files.length > 1) {
      problems.push(
        `${files.join(', ')}: ${files.length} files share number ${String(num).padStart(4, '0')}; renumber all but one to the next free number`,
      );
    }
  }

  const migrations: MigrationFile[] = [];
  await Promise.all(
    found.map(async (f) => {
      const m = await readMigration(f, problems);
      if (m) migrations.push(m);
    }),
  );

  if (problems.length > 0) {
    problems.sort();
    throw new UsageError(
      'MIGRATION_FILES',
      `${folder} has ${problems.length} problem(s) with migration files:\n  ${problems.join('\n  ')}`,
      'fix each listed file; nothing was applied',
    );
  }
  return migrations.sort((a, b) => a.number - b.number);
}

/** The folder's entries; a missing or unreadable folder, or a file in its place, is a usage error naming the fix. */
async function folderEntries(folder: string): Promise<string[]> {
  try {
    const st = await stat(folder);
    if (!st.isDirectory()) {
      throw new UsageError(
        'MIGRATION_FILES',
        `migrations folder ${folder} is not a folder`,
        'point migrations.dir in the config at the folder of migration files',
      );
    }
    return await readdir(folder);
  } catch (err) {
    if (err instanceof UsageError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    throw new UsageError(
      'MIGRATION_FILES',
      code === 'ENOENT' ? `migrations folder ${folder} does not exist` : `migrations folder ${folder} cannot be read: ${errorMessage(err)}`,
      code === 'ENOENT'
        ? 'create it (tenantctl migrate create <name> writes the first file) or set migrations.dir in the config'
        : 'check the folder permissions',
      { cause: err },
    );
  }
}

/** One migration file read and checked (its problems pushed to `problems`; null: unusable). */
async function readMigration(
  f: { file: string; number: number; name: string; ext: string },
  problems: string[],
): Promise<MigrationFile | null> {
  const entry = basename(f.file);
  let bytes: Buffer;
  try {
    const st = await stat(f.file);
    if (!st.isFile()) {
      problems.push(`${entry}: not a regular file; remove it or rename it so it does not look like a migration`);
      return null;
    }
    bytes = await readFile(f.file);
  } catch (err) {
    problems.push(`${entry}: cannot be read (${errorMessage(err)}); check its permissions`);
    return null;
  }
  const checksum = createHash('sha256').update(bytes).digest('hex');
  const id = entry.slice(0, -(f.ext.length + 1));
  if (f.ext === 'sql') {
    const sql = bytes.toString('utf8');
    const unknown = unknownPlaceholders(sql);
    if (unknown.length > 0) {
      problems.push(
        `${entry}: unknown placeholder(s) ${unknown.map((p) => `{{${p}}}`).join(', ')}; use ${PLACEHOLDERS.map((p) => `{{${p}}}`).join(' or ')}`,
      );
    }
    const firstLine = sql
      .replace(/^\uFEFF/, '')
      .split(/\r?\n/, 1)[0]
      .trim();
    const control = firstLine !== NO_TRANSACTION_MARKER ? transactionControl(sql) : null;
    if (control) {
      problems.push(
        `${entry} line ${control.line}: ${control.statement} would end the transaction tenantctl runs the file in (what came before it committed, the rest run without the file's settings); remove BEGIN/COMMIT (each file is one transaction already), or start the file with ${NO_TRANSACTION_MARKER} to run its statements one by one`,
      );
    }
    return {
      id,
      number: f.number,
      name: f.name,
      file: f.file,
      kind: 'sql',
      checksum,
      transactional: firstLine !== NO_TRANSACTION_MARKER,
      sql,
    };
  } else {
    return {
      id,
      number: f.number,
      name: f.name,
      file: f.file,
      kind: 'module',
      checksum,
      transactional: !MODULE_NO_TX.test(bytes.toString('utf8')),
    };
  }
}

const modules = new Map<string, Promise<MigrationModule>>();

/**
 * Import a module migration, once per process however many targets apply it. TypeScript goes
 * through tsx, so migrations need no build step.
 */
export function importMigration(m: MigrationFile): Promise<MigrationModule> {
  let p = modules.get(m.file);
  if (!p) {
    p = importModule(m);
    modules.set(m.file, p);
    // A failed import is not cached: the operator may fix the file and the process may retry.
    p.catch(() => modules.delete(m.file));
  }
  return p;
}

async function importModule(m: MigrationFile): Promise<MigrationModule> {
  const url = pathToFileURL(m.file).href;
  let mod: Record<string, unknown>;
  if (m.file.endsWith('.ts')) {
    const { tsImport } = await import('tsx/esm/api');
    mod = await tsImport(url, import.meta.url);
  } else {
    mod = await import(url);
  }
  // CommonJS-looking modules arrive under `default`.
  const dflt = mod.default as Record<string, unknown> | undefined;
  const up = (mod.up ?? dflt?.up) as unknown;
  const transaction = (mod.transaction ?? dflt?.transaction) as unknown;
  if (typeof up !== 'function') {
    throw new Error(`${basename(m.file)} does not export an up(db) function; add: export async function up(db) { ... }`);
  }
  if (transaction !== undefined && typeof transaction !== 'boolean') {
    throw new Error(`${basename(m.file)} exports transaction = ${String(transaction)}; it must be true or false`);
  }
  return { up: up as MigrationModule['up'], transaction };
}
