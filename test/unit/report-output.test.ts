import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Chalk } from 'chalk';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { redactDeep, redactedJson, registerSecret } from '../../src/config/redact.js';
import { checkSelectorValues } from '../../src/cli/selectors.js';
import { argvErrorDocument, commandPath, wantsJson } from '../../src/cli/argv-errors.js';
import { Command } from 'commander';
import { escapeControl, styled } from '../../src/report/escape.js';
import { naturalCompare } from '../../src/report/natural-sort.js';
import { outcomeLine } from '../../src/report/progress.js';
import { renderTable } from '../../src/report/table.js';
import type { Output } from '../../src/report/output.js';
import { nameProblem } from '../../src/provision/name.js';
import { readTenantFile } from '../../src/provision/bulk-file.js';
import { TenantctlError } from '../../src/errors.js';
import { renderRestore } from '../../src/report/backup.js';
import { renderRollback } from '../../src/report/move.js';
import type { RollbackResult } from '../../src/move/rollback.js';
import { foreignKeyPath } from '../../src/copy/pool-load-path.js';
import { renderPitrStatus } from '../../src/report/pitr.js';
import { renderMigrateUp } from '../../src/report/migrate.js';
import type { MigrateUpDocument } from '../../src/migrate/up.js';
import type { ShardWindow } from '../../src/pitr/window.js';

const SHIPPED_FILE = fileURLToPath(new URL('../../tenants.config.yaml', import.meta.url));
const shipped = parseConfig(readFileSync(SHIPPED_FILE, 'utf8'), SHIPPED_FILE, {});

function fakeOut(tty: boolean): Output {
  return {
    json: false,
    quiet: false,
    tty,
    color: new Chalk({ level: 0 }),
    print() {},
    info() {},
    error() {},
    document() {},
    documentPart() {},
    reveal() {},
  };
}

function thrown(fn: () => unknown): TenantctlError {
  try {
    fn();
  } catch (err) {
    if (err instanceof TenantctlError) return err;
    throw err;
  }
  throw new Error('expected an error');
}

describe('tables', () => {
  it('are compact on a TTY: one rule under the header, none between rows', () => {
    const t = renderTable(
      fakeOut(true),
      ['slug', 'status'],
      [
        ['a', 'active'],
        ['b', 'active'],
        ['c', 'failed'],
      ],
    );
    const lines = t.split('\n');
    // top border, header, rule, 3 rows, bottom border
    expect(lines).toHaveLength(7);
    expect(lines.filter((l) => l.startsWith('├'))).toHaveLength(1);
  });

  it('escape control characters in cells, on a TTY and off it, but keep our own colours', () => {
    const name = 'evil\nname\x1b[2J\x1b]0;title\x07\t\u202e';
    for (const tty of [true, false]) {
      const t = renderTable(fakeOut(tty), ['name', 'ok'], [[name, styled('\x1b[32mok\x1b[39m')]]);
      expect(t).toContain('evil\\nname\\x1b[2J\\x1b]0;title\\x07\\t\\u202e');
      expect(t).not.toMatch(/\x1b\[2J|\x1b\]0|\u202e/);
      expect(t).toContain('\x1b[32mok\x1b[39m');
      if (!tty) expect(t.split('\n')).toHaveLength(2);
    }
  });

  it('escapeControl leaves printable text of any language alone', () => {
    expect(escapeControl('Müller & Söhne — 東京')).toBe('Müller & Söhne — 東京');
    expect(escapeControl('a\r\nb\x7f\x9b')).toBe('a\\r\\nb\\x7f\\x9b');
  });
});

describe('natural sort', () => {
  it('orders numbered slugs as a person does', () => {
    expect(['csv-20', 'csv-2', 'csv-19', 'acme', 'csv-100'].sort(naturalCompare)).toEqual(['acme', 'csv-2', 'csv-19', 'csv-20', 'csv-100']);
  });
});

describe('JSON documents', () => {
  it('carry dates as ISO strings, not {}', () => {
    const at = new Date('2024-05-06T07:08:09.010Z');
    const doc = JSON.parse(JSON.stringify(redactDeep({ createdAt: at, events: [{ at }] })));
    expect(doc).toEqual({ createdAt: '2024-05-06T07:08:09.010Z', events: [{ at: '2024-05-06T07:08:09.010Z' }] });
  });

  it('a document is scrubbed in JSON.stringify itself exactly as redactDeep scrubs its copy', () => {
    registerSecret('hunter2-xyz');
    const doc = {
      at: new Date('2024-05-06T07:08:09.010Z'),
      never: new Date(Number.NaN),
      tenants: [{ slug: 'a', url: 'postgres://app:s3cr%40t@db:5432/x', note: 'said hunter2-xyz twice: hunter2-xyz', n: 3 }],
      password: 'plain',
      nested: { clientSecret: 'x', secretCount: 2, missing: undefined, none: null },
    };
    const text = redactedJson(doc, 2);
    expect(text).toBe(JSON.stringify(redactDeep(doc), null, 2));
    expect(text).not.toMatch(/hunter2|s3cr|plain/);
    expect(JSON.parse(text)).toMatchObject({ never: null, password: '***', nested: { clientSecret: '***', secretCount: 2 } });
  });

  it('argument errors name the command the words name', () => {
    // The shape of tenantctl's program (main.ts runs itself when imported).
    const program = new Command('tenantctl').option('--config <file>').option('--json');
    const tenant = program.command('tenant');
    tenant.command('list');
    tenant.command('create [slug]');
    expect(commandPath(program, ['--config', 'f.yaml', 'tenant', 'list', '--bogus'])).toEqual(['tenant', 'list']);
    expect(wantsJson(['tenant', 'show', '--json'])).toBe(true);
    expect(wantsJson(['tenant', 'show', '--', '--json'])).toBe(false);
    const doc = argvErrorDocument(program, ['tenant', 'creat'], 'USAGE', "unknown command 'creat'\n(Did you mean create?)");
    expect(doc).toEqual({
      command: 'tenant',
      ok: false,
      error: { code: 'USAGE', message: "unknown command 'creat'", hint: 'did you mean create? see tenantctl tenant --help' },
    });
  });
});

describe('the live view outcome', () => {
  it('never says done for a run that stopped or was interrupted', () => {
    const stopped = outcomeLine('tenant create', { total: 10908, succeeded: 0, failed: 8, skipped: 0, running: 0 }, {});
    expect(stopped).toEqual({ ok: false, text: 'tenant create: stopped: 0 succeeded, 8 failed, 10900 not run of 10908' });
    const interrupted = outcomeLine('migrate up', { total: 28, succeeded: 12, failed: 0, skipped: 0, running: 0 }, { interrupted: true });
    expect(interrupted).toEqual({ ok: false, text: 'migrate up: interrupted: 12 succeeded, 0 failed, 16 not run of 28' });
    expect(outcomeLine('migrate up', { total: 3, succeeded: 2, failed: 1, skipped: 0, running: 0 }, {}).text).toBe(
      'migrate up: finished with failures: 2 succeeded, 1 failed of 3',
    );
    expect(outcomeLine('migrate up', { total: 3, succeeded: 2, failed: 0, skipped: 1, running: 0 }, {})).toEqual({
      ok: true,
      text: 'migrate up: done: 2 succeeded, 1 skipped of 3',
    });
  });
});

describe('selector values', () => {
  it('that name nothing are exit 2 with the valid values listed, all at once', () => {
    const e = thrown(() =>
      checkSelectorValues(shipped, { model: ['bogus'], tier: ['nope'], shard: ['us9'], status: ['x'], region: ['mars'] }),
    );
    expect(e.exitCode).toBe(2);
    expect(e.message).toMatch(/--model bogus: no such model \(valid: pool, schema, database\)/);
    expect(e.message).toMatch(/--tier nope: no such tier \(valid: free, standard, enterprise\)/);
    expect(e.message).toMatch(/--shard us9: no such shard \(valid: us1, us2, eu1\)/);
    expect(e.message).toMatch(/--status x: no such status \(valid: provisioning, active, suspended, failed, deleting, moving\)/);
    expect(e.message).toMatch(/--region mars: no such region/);
    expect(thrown(() => checkSelectorValues(shipped, { shard: ['us9'] })).code).toBe('UNKNOWN_SHARD');
    expect(() => checkSelectorValues(shipped, { model: ['pool', 'schema'], shard: ['us1'], status: ['active'] })).not.toThrow();
  });
});

describe('tenant names', () => {
  it('have a length limit, counted in characters', () => {
    expect(nameProblem('x'.repeat(200))).toBeNull();
    expect(nameProblem('東'.repeat(200))).toBeNull();
    expect(nameProblem('x'.repeat(120_000))).toBe('is 120000 characters long; the limit is 200');
  });

  it('are checked in bulk files before anything is created', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tenantctl-names-'));
    const file = join(dir, 'names.csv');
    writeFileSync(file, `slug,name\nok-one,Fine\ntoo-long,${'y'.repeat(201)}\n`);
    const e = thrown(() => readTenantFile(file));
    expect(e.exitCode).toBe(2);
    expect(e.message).toMatch(/line 3 \(too-long\): name is 201 characters long; the limit is 200/);
    expect(e.message).not.toContain('y'.repeat(201));
  });

  it("a CSV header's unknown column is line 1's problem, said once, not every row's", () => {
    const dir = mkdtempSync(join(tmpdir(), 'tenantctl-header-'));
    const file = join(dir, 'header.csv');
    writeFileSync(file, 'slug,nme\nzz1,A\nzz2,B\n');
    const e = thrown(() => readTenantFile(file));
    expect(e.exitCode).toBe(2);
    expect(e.message).toMatch(/line 1 \(the header\): unknown column\(s\) nme \(allowed: slug, name,/);
    expect(e.message).not.toMatch(/line [23] .*unknown column/);
  });
});

describe('a restore into a pool', () => {
  it('says how its foreign keys were checked and, without the grant, the GRANT that checks them once per tenant', () => {
    const printed: string[] = [];
    const out = { ...fakeOut(false), print: (l: string) => void printed.push(l) };
    const base = {
      status: 'succeeded',
      backup: 'b1',
      tenant: 'acme',
      rows: 3,
      model: 'pool',
      shard: 'us1',
      target: 'us1/app/app',
    } as const;
    const slow = foreignKeyPath('row by row', { intoPool: true, role: { role: 'tenantctl', may: false } });
    renderRestore(out, 'restore', { ...base, foreignKeys: 'row by row', foreignKeyCheck: slow } as never);
    expect(printed[1]).toBe(
      'foreign keys checked row by row: role tenantctl may not set session_replication_role; GRANT SET ON PARAMETER session_replication_role TO tenantctl (as a superuser) to check once per tenant',
    );
    const old = foreignKeyPath('row by row', { intoPool: true, role: { role: 'tenantctl', may: false, old: true } });
    expect(old.why).toMatch(/PostgreSQL before 15 cannot grant it/);
    printed.length = 0;
    renderRestore(out, 'restore', { ...base, foreignKeys: 'once per table' } as never);
    expect(printed).toHaveLength(1);
  });
});

describe('a move rolled back across models', () => {
  it('says the application goes back to its names from before the move, not to new ones', () => {
    const printed: string[] = [];
    const out = { ...fakeOut(false), print: (l: string) => void printed.push(l) };
    const at = { shard: 'us1', model: 'schema', database: 'tenant_schemas', schema: 't_sc', target: 'us1/tenant_schemas/t_sc' };
    const r = {
      tenant: 'sc',
      move: 7,
      at,
      removed: { shard: 'us2', model: 'database', database: 't_sc', schema: 'app', target: 'us2/t_sc/app' },
      wasSwitched: true,
      cleaned: [],
      names: { shard: 'us1', database: 'tenant_schemas', schema: 't_sc', role: 'tenant_sc', unchanged: false },
    } as unknown as RollbackResult;
    renderRollback(out, 'move rollback', r);
    expect(printed.join('\n')).toContain(
      'the application goes back to its names from before the move: database tenant_schemas, schema t_sc, role tenant_sc on shard us1',
    );
    expect(printed.join('\n')).not.toContain('new names');
  });
});

describe('pitr status', () => {
  const shard = (name: string, window: boolean): ShardWindow => ({
    shard: name,
    region: 'us-east',
    stanza: 'ok',
    archiveMode: 'on',
    archiveCommand: 'pgbackrest … archive-push %p',
    backups: [],
    lastArchived: { wal: '000000010000000000000004', at: '2026-12-07T07:34:50.348Z' },
    lastFailed: { wal: null, at: null },
    healthy: true,
    window: window ? { from: '2026-12-07T07:00:00Z', to: '2026-12-07T07:34:50Z' } : null,
  });

  it('names the shards without a window and the command that opens one (a new fleet exits 1 with it)', () => {
    const notes: string[] = [];
    renderPitrStatus({ ...fakeOut(false), info: (t) => notes.push(t) }, 'pitr status', [shard('us1', false), shard('eu1', true)]);
    expect(notes).toEqual([
      'no recoverable window on us1: take a base backup (tenantctl pitr backup --type full); the window starts at its end',
    ]);
    notes.length = 0;
    renderPitrStatus({ ...fakeOut(false), info: (t) => notes.push(t) }, 'pitr status', [shard('us1', true)]);
    expect(notes).toEqual([]);
  });
});

describe('migrate up summary', () => {
  it('says when a target counted not run had applied some of its files before Ctrl-C', () => {
    const row = (tenant: string, target: string, reason: string) => ({
      tenant,
      model: 'pool',
      region: 'us-east',
      shard: 'us1',
      target,
      status: 'skipped' as const,
      reason,
    });
    const doc: MigrateUpDocument = {
      command: 'migrate up',
      ok: false,
      summary: { total: 3, succeeded: 0, failed: 0, skipped: 3, durationMs: 1200 },
      results: [
        row('a', 'us1/tenants/pool', 'not run: interrupted after applying 0004_x'),
        row('b', 'us1/tenants/pool', 'not run: interrupted after applying 0004_x'),
        row('c', 'us1/tenants/t_c', 'not run: interrupted'),
      ],
      run: 7,
      dryRun: false,
      head: '0005_y',
      targets: { total: 2, upToDate: 0, migrated: 0, failed: 0, notRun: 2, unreachable: 0, gone: 0 },
      interrupted: true,
    };
    const printed: string[] = [];
    renderMigrateUp({ ...fakeOut(false), print: (t) => printed.push(t) }, doc);
    expect(printed[0]).toContain('2 not run (1 of them after applying some of their files); interrupted');
    expect(printed).toContain('finish the run (failures and targets not run): tenantctl migrate up --resume 7');
  });
});
