import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { UsageError } from '../../src/errors.js';
import { loadMigrations, type MigrationFile } from '../../src/migrate/files.js';
import { splitStatements } from '../../src/migrate/split.js';
import { placeholdersIn, renderSql, templateVars, unknownPlaceholders } from '../../src/migrate/template.js';
import { pendingFor, type AppliedRow } from '../../src/migrate/tracking.js';

const REPO_MIGRATIONS = fileURLToPath(new URL('../../migrations', import.meta.url));
const dirs: string[] = [];

async function folder(files: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'tenantctl-migfiles-'));
  dirs.push(dir);
  for (const [name, text] of Object.entries(files)) await writeFile(join(dir, name), text);
  return dir;
}

async function problems(dir: string): Promise<UsageError> {
  const err = await loadMigrations(dir).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(UsageError);
  expect((err as UsageError).code).toBe('MIGRATION_FILES');
  expect((err as UsageError).exitCode).toBe(2);
  return err as UsageError;
}

afterEach(async () => {
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

describe('loadMigrations', () => {
  it('reads the shipped migrations in order, with checksums of the raw bytes', async () => {
    const ms = await loadMigrations(REPO_MIGRATIONS);
    expect(ms.map((m) => m.id)).toEqual(['0001_workspaces_and_users', '0002_projects_and_tasks', '0003_comments']);
    for (const m of ms) {
      expect(m.kind).toBe('sql');
      expect(m.transactional).toBe(true);
      expect(m.checksum).toBe(createHash('sha256').update(m.sql!).digest('hex'));
      expect(unknownPlaceholders(m.sql!)).toEqual([]);
    }
    expect(ms[0].number).toBe(1);
    expect(ms[0].name).toBe('workspaces_and_users');
  });

  it('sorts by number, tells sql from modules and reads the no-transaction markers', async () => {
    const dir = await folder({
      '0010_later.sql': 'select 1;',
      '0002_index.sql': '-- tenantctl:no-transaction\ncreate index concurrently i on t (x);',
      '0003_module.ts': 'export const transaction = false;\nexport async function up() {}',
      '0004_module.mjs': 'export async function up() {}',
      '0005_plain.js': 'export const transaction = true;\nexport async function up() {}',
      'README.md': 'ignored',
      '.DS_Store': 'ignored',
    });
    const ms = await loadMigrations(dir);
    expect(ms.map((m) => [m.id, m.kind, m.transactional])).toEqual([
      ['0002_index', 'sql', false],
      ['0003_module', 'module', false],
      ['0004_module', 'module', true],
      ['0005_plain', 'module', true],
      ['0010_later', 'sql', true],
    ]);
    expect(ms[1].sql).toBeUndefined();
  });

  it('gives a different checksum when only a byte changes', async () => {
    const a = await loadMigrations(await folder({ '0001_a.sql': 'select 1;\n' }));
    const b = await loadMigrations(await folder({ '0001_a.sql': 'select 1; \n' }));
    expect(a[0].checksum).toMatch(/^[0-9a-f]{64}$/);
    expect(a[0].checksum).not.toBe(b[0].checksum);
  });

  it('reports every problem at once: duplicates, bad names, unknown placeholders', async () => {
    const dir = await folder({
      '0001_first.sql': 'select 1;',
      '0001_also_first.sql': 'select 2;',
      '0002-dashes.sql': 'select 3;',
      '0003_CamelCase.sql': 'select 4;',
      '3_short.sql': 'select 5;',
      'add_thing.sql': 'select 6;',
      '0004_types.cjs': 'module.exports = {}',
      '0005_ok.sql': 'create table x ({{tenant_key_column}} {{tenant_key_typ}});',
    });
    const err = await problems(dir);
    expect(err.message).toContain('0001_also_first.sql, 0001_first.sql: 2 files share number 0001');
    for (const bad of ['0002-dashes.sql', '0003_CamelCase.sql', '3_short.sql', 'add_thing.sql', '0004_types.cjs']) {
      expect(err.message).toContain(`${bad}: bad name`);
    }
    expect(err.message).toContain('0005_ok.sql: unknown placeholder(s) {{tenant_key_typ}}');
    expect(err.message).toContain('has 7 problem(s)');
  });

  it('refuses a missing folder with the fix', async () => {
    const err = await problems(join(tmpdir(), 'tenantctl-no-such-folder-xyz'));
    expect(err.message).toMatch(/does not exist/);
    expect(err.hint).toMatch(/migrations\.dir/);
  });

  it('reports a file that cannot be read (a dangling link), with the others', async () => {
    const dir = await folder({ '0002_fine.sql': 'select 1;', '0002_dup.sql': 'select 1;' });
    await symlink(join(dir, 'nowhere.sql'), join(dir, '0001_link.sql'));
    const err = await problems(dir);
    expect(err.message).toMatch(/0001_link\.sql: cannot be read \(.*ENOENT.*\)/);
    expect(err.message).toMatch(/share number 0002/);
  });

  it('reports a folder named like a migration', async () => {
    const dir = await folder({});
    await mkdir(join(dir, '0001_folder.sql'));
    const err = await problems(dir);
    expect(err.message).toMatch(/0001_folder\.sql: not a regular file/);
  });
});

describe('placeholders', () => {
  const cfg = (type: 'uuid' | 'bigint' | 'text', column = 'tenant_id') => ({ tenantKey: { column, type, tables: {}, shared: {} } });

  it('substitutes the quoted key column and the key type', () => {
    const text = 'create table t ({{tenant_key_column}} {{ tenant_key_type }} not null, primary key ({{tenant_key_column}}))';
    expect(renderSql(text, templateVars(cfg('bigint')))).toBe('create table t ("tenant_id" bigint not null, primary key ("tenant_id"))');
    expect(renderSql(text, templateVars(cfg('text', 'org')))).toContain('"org" text not null');
  });

  it('lists placeholders and rejects unknown ones', () => {
    expect(placeholdersIn('{{a}} {{tenant_key_type}} {{a}}')).toEqual(['a', 'tenant_key_type']);
    expect(unknownPlaceholders('{{tenant_key_type}} {{nope}}')).toEqual(['nope']);
    expect(() => renderSql('{{nope}}', templateVars(cfg('uuid')))).toThrow(/unknown placeholder \{\{nope\}\}/);
  });

  it('keeps line numbers (substitution adds no lines)', () => {
    const text = 'a {{tenant_key_type}}\nb {{tenant_key_column}}\nc';
    expect(renderSql(text, templateVars(cfg('uuid'))).split('\n')).toHaveLength(3);
  });
});

describe('splitStatements', () => {
  it('splits at top-level semicolons only, with line numbers', () => {
    const script = [
      '-- header; not a statement',
      "create table a (x text default 'a;b');",
      '/* a; /* nested; */ comment */',
      'create function f() returns int language sql as $$ select 1; $$;',
      "select E'it\\'s;', \"we;ird\" from a;",
      'do $body$ begin perform 1; end $body$',
      ';;',
    ].join('\n');
    expect(splitStatements(script)).toEqual([
      { sql: "create table a (x text default 'a;b')", line: 2 },
      { sql: 'create function f() returns int language sql as $$ select 1; $$', line: 4 },
      { sql: "select E'it\\'s;', \"we;ird\" from a", line: 5 },
      { sql: 'do $body$ begin perform 1; end $body$', line: 6 },
    ]);
  });

  it('drops comment-only trailers', () => {
    expect(splitStatements('select 1;\n-- the end\n')).toEqual([{ sql: 'select 1', line: 1 }]);
  });
});

describe('pendingFor', () => {
  const file = (id: string, checksum = `sum-${id}`): MigrationFile => ({
    id,
    number: Number(id.slice(0, 4)),
    name: id.slice(5),
    file: `/m/${id}.sql`,
    kind: 'sql',
    checksum,
    transactional: true,
    sql: '',
  });
  const row = (name: string, checksum = `sum-${name}`): AppliedRow => ({
    schema: 't_acme',
    name,
    checksum,
    appliedAt: new Date(0),
    durationMs: 1,
  });
  const files = [file('0001_a'), file('0002_b'), file('0003_c')];

  it('everything is pending on a fresh target', () => {
    const r = pendingFor(files, []);
    expect(r.pending.map((m) => m.id)).toEqual(['0001_a', '0002_b', '0003_c']);
    expect(r).toMatchObject({ applied: [], drift: [], unknown: [] });
  });

  it('nothing is pending at head', () => {
    const r = pendingFor(
      files,
      files.map((f) => row(f.id)),
    );
    expect(r.pending).toEqual([]);
    expect(r.applied).toEqual(['0001_a', '0002_b', '0003_c']);
  });

  it('reports drift when an applied checksum differs', () => {
    const r = pendingFor(files, [row('0001_a'), row('0002_b', 'old')]);
    expect(r.drift).toEqual([{ migration: '0002_b', appliedChecksum: 'old', fileChecksum: 'sum-0002_b' }]);
    expect(r.pending.map((m) => m.id)).toEqual(['0003_c']);
  });

  it('reports applied migrations with no file as unknown', () => {
    const r = pendingFor(files.slice(0, 1), [row('0001_a'), row('0009_newer'), row('0005_x')]);
    expect(r.unknown).toEqual(['0005_x', '0009_newer']);
    expect(r.pending).toEqual([]);
  });

  it('a gap (a late-merged lower number) is still pending', () => {
    const r = pendingFor(files, [row('0001_a'), row('0003_c')]);
    expect(r.pending.map((m) => m.id)).toEqual(['0002_b']);
  });
});
