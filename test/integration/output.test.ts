import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { parseDocument } from 'yaml';
import { cli } from '../helpers/cli.js';

const config = inject('fleetConfigFile');
const tmp = mkdtempSync(join(tmpdir(), 'tenantctl-output-'));
const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
const VERSION = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')).version as string;

afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** stdout must be exactly one JSON document. */
function onlyJson(stdout: string): Record<string, unknown> {
  const doc = JSON.parse(stdout) as Record<string, unknown>;
  expect(typeof doc).toBe('object');
  return doc;
}

describe('JSON documents (piped, as CI runs the CLI)', () => {
  it('every command answers {command, ok, ...} with ISO dates', async () => {
    // A config of the same fleet whose migrations.dir is a scratch folder, for migrate create.
    const doc = parseDocument(readFileSync(config, 'utf8'));
    const scratch = join(tmp, 'migrations');
    doc.setIn(['migrations', 'dir'], scratch);
    const scratchConfig = join(tmp, 'scratch.yaml');
    writeFileSync(scratchConfig, doc.toString());

    const runs: [string[], string, string?][] = [
      [['config', 'show'], 'config show'],
      [['dev', 'status'], 'dev status'],
      [['tenant', 'create', 'out-env', '--tier', 'standard'], 'tenant create'],
      [['doctor'], 'doctor'],
      [['tenant', 'show', 'out-env'], 'tenant show'],
      [['tenant', 'list', '--tenant', 'out-env'], 'tenant list'],
      [['resolve', 'out-env'], 'resolve'],
      [['tenant', 'suspend', 'out-env'], 'tenant suspend'],
      [['tenant', 'resume', 'out-env'], 'tenant resume'],
      [['migrate', 'status', '--tenant', 'out-env'], 'migrate status'],
      [['migrate', 'up', '--tenant', 'out-env'], 'migrate up'],
      [['migrate', 'create', 'add_things'], 'migrate create', scratchConfig],
      [['tenant', 'delete', 'out-env', '--yes'], 'tenant delete'],
    ];
    for (const [args, command, file] of runs) {
      const r = await cli([...args, '--json'], { config: file ?? config });
      const d = onlyJson(r.stdout);
      // doctor's verdict depends on the machine (pg_dump); its document and exit code must agree.
      if (command !== 'doctor') expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(0);
      expect(d, args.join(' ')).toMatchObject({ command, ok: r.code === 0 });
      if (command === 'config show') expect(d.config).toMatchObject({ regions: expect.any(Object) });
      if (command === 'tenant show') {
        const t = d.tenant as { createdAt: string; updatedAt: string };
        expect(t.createdAt).toMatch(ISO);
        expect(t.updatedAt).toMatch(ISO);
        const events = d.events as { at: string }[];
        expect(events.length).toBeGreaterThan(0);
        for (const e of events) expect(e.at).toMatch(ISO);
      }
      if (command === 'tenant list') expect((d.tenants as { createdAt: string }[])[0].createdAt).toMatch(ISO);
    }
    expect(readdirSync(scratch)).toContainEqual(expect.stringMatching(/_add_things\.sql$/));
  });

  it('argument errors are one JSON document with code, message and hint, exit 2', async () => {
    const cases: [string[], string, RegExp][] = [
      [['tenant', 'list', '--bogus'], 'tenant list', /unknown option '--bogus'/],
      [['tenant', 'show'], 'tenant show', /missing required argument 'slug'/],
      [['migrate', 'up', '--on-error', 'sometimes'], 'migrate up', /argument 'sometimes' is invalid.*stop, continue/],
      [['tenant', 'create', 'out-x', '--concurrency', 'zero'], 'tenant create', /positive whole number/],
      // A whole number to JavaScript, out of the catalog's bigint range: exit 2, not "unexpected error".
      [['migrate', 'up', '--resume', '99999999999999999999'], 'migrate up', /--resume.*must be at most 9007199254740991/],
      [['migrate', 'up', '--concurrency', '100000'], 'migrate up', /--concurrency.*must be at most 256/],
      [['tenant', 'lst'], 'tenant', /unknown command 'lst'/],
      [['frobnicate'], 'tenantctl', /unknown command 'frobnicate'/],
      // The verb left out: the help goes to stderr, and stdout still holds the one document.
      [[], 'tenantctl', /^a command is missing$/],
      [['backup'], 'backup', /^a subcommand of backup is missing$/],
    ];
    for (const [args, command, message] of cases) {
      for (const argv of [
        [...args, '--json'],
        ['--json', ...args],
      ]) {
        const r = await cli(argv, { config });
        expect(r.code, argv.join(' ')).toBe(2);
        const d = onlyJson(r.stdout) as { command: string; ok: boolean; error: { code: string; message: string; hint: string } };
        expect(d.command).toBe(command);
        expect(d.ok).toBe(false);
        expect(d.error.code).toBe('USAGE');
        expect(d.error.message).toMatch(message);
        expect(d.error.hint).toMatch(/--help/);
      }
      // Without --json, commander's line on stderr and where the flags are listed.
      if (args.length < 2 || args[0] === 'backup') continue;
      const text = await cli(args, { config });
      expect(text.code).toBe(2);
      expect(text.stderr).toMatch(message);
      // Commander's own suggestion ("Did you mean list?") is the hint when it has one.
      if (!text.stderr.includes('Did you mean'))
        expect(text.stderr).toContain(`hint: see ${command === 'tenantctl' ? '' : 'tenantctl '}${command} --help`);
    }
  });

  it('--version prints the package version', async () => {
    const r = await cli(['--version']);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(VERSION);
    const j = await cli(['--version', '--json']);
    expect(onlyJson(j.stdout)).toEqual({ command: 'version', ok: true, version: VERSION });
  });
});

describe('a backup.dir that is a file', () => {
  it('is a config error naming the setting (exit 2 for a list; the backup row says it), never "unexpected error"', async () => {
    const doc = parseDocument(readFileSync(config, 'utf8'));
    const file = join(tmp, 'not-a-folder');
    writeFileSync(file, 'x');
    doc.setIn(['regions', 'us-east', 'backup', 'dir'], file);
    const fileConfig = join(tmp, 'backup-file.yaml');
    writeFileSync(fileConfig, doc.toString());
    const list = await cli(['backup', 'list'], { config: fileConfig });
    expect(list.code, list.stderr).toBe(2);
    expect(list.stderr).toContain(`regions.us-east.backup.dir ${file}: ${file} is a file, not a folder`);
    expect(list.stderr).not.toMatch(/unexpected error/);
  });
});

describe('selectors', () => {
  it('values that name no model, tier, region, shard, status or tenant are exit 2 listing the valid ones', async () => {
    const cases: [string[], RegExp][] = [
      [['tenant', 'list', '--model', 'bogus'], /--model bogus: no such model \(valid: pool, schema, database\)/],
      [['tenant', 'list', '--tier', 'nope'], /--tier nope: no such tier \(valid: free, standard, enterprise\)/],
      [['tenant', 'list', '--shard', 'us9'], /--shard us9: no such shard \(valid: us1, us2, eu1\)/],
      [
        ['tenant', 'list', '--status', 'x'],
        /--status x: no such status \(valid: provisioning, active, suspended, failed, deleting, moving\)/,
      ],
      [['tenant', 'list', '--region', 'mars'], /--region mars: no such region \(valid: us-east, eu-west\)/],
      [['tenant', 'list', '--tenant', 'out-never-made'], /no tenant "out-never-made"/],
      [['migrate', 'status', '--shard', 'us9'], /no such shard/],
      [['migrate', 'up', '--tier', 'nope'], /no such tier/],
      [['migrate', 'up', '--tenant', 'out-never-made'], /no tenant "out-never-made"/],
      // A cron backup or audit with a typo backs up or audits nothing: exit 2, never "0 of 0", exit 0.
      [['backup', 'create', '--all', '--tier', 'nope'], /--tier nope: no such tier/],
      [['backup', 'create', '--all', '--model', 'pools'], /--model pools: no such model/],
      [['audit', '--shard', 'us9'], /--shard us9: no such shard/],
      [['audit', '--tenant', 'out-never-made'], /no tenant "out-never-made"/],
      [['backup', 'prune', '--keep-last', '2', '--tenant', 'out-never-made'], /no tenant "out-never-made" and no backups of it/],
      [['backup', 'prune', '--keep-last', '2', '--tenant', 'Bad_Slug'], /tenant slug "Bad_Slug"/],
      // An unset variable's empty name is refused, as rename refuses it; nothing is created.
      [['tenant', 'create', 'out-empty-name', '--name', ''], /--name is empty/],
      // A name no tenant can have says why (not only "no tenant"): here a capital letter.
      [['tenant', 'show', 'Out_Never'], /no tenant "Out_Never": a tenant slug has upper case letters; use lowercase/],
    ];
    for (const [args, message] of cases) {
      const r = await cli(args, { config });
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(2);
      expect(r.stderr).toMatch(message);
      expect(r.stderr).not.toMatch(/run \d+/); // migrate up started no run
      const j = await cli([...args, '--json'], { config });
      expect(j.code).toBe(2);
      expect(onlyJson(j.stdout)).toMatchObject({ ok: false, error: { message: expect.stringMatching(message) } });
    }
  });
});

describe('terminal manners, piped', () => {
  it('tenant list sorts naturally', async () => {
    const file = join(tmp, 'sort.csv');
    const slugs = ['out-sort-20', 'out-sort-2', 'out-sort-19', 'out-sort-100', 'out-sort-1'];
    writeFileSync(file, `slug,tier\n${slugs.map((s) => `${s},free`).join('\n')}\n`);
    const c = await cli(['tenant', 'create', '--from-file', file], { config });
    expect(c.code, c.stderr).toBe(0);
    const r = await cli(['tenant', 'list', '--tenant', slugs.join(',')], { config });
    expect(
      r.stdout
        .split('\n')
        .slice(1, 6)
        .map((l) => l.split('\t')[0]),
    ).toEqual(['out-sort-1', 'out-sort-2', 'out-sort-19', 'out-sort-20', 'out-sort-100']);
    const j = JSON.parse((await cli(['tenant', 'list', '--tenant', slugs.join(','), '--json'], { config })).stdout);
    expect(j.tenants.map((t: { slug: string }) => t.slug)).toEqual([
      'out-sort-1',
      'out-sort-2',
      'out-sort-19',
      'out-sort-20',
      'out-sort-100',
    ]);
  });

  it('names with newlines and escape sequences are printed escaped; JSON keeps them exact', async () => {
    const name = 'Evil\nCorp\x1b[2J\x1b[31mred';
    const c = await cli(['tenant', 'create', 'out-evil', '--tier', 'free', '--name', name], { config });
    expect(c.code, c.stderr).toBe(0);
    const r = await cli(['tenant', 'show', 'out-evil'], { config });
    expect(r.stdout).toMatch(/^name\s+Evil\\nCorp\\x1b\[2J\\x1b\[31mred$/m);
    expect(r.stdout).not.toContain('\x1b');
    const j = JSON.parse((await cli(['tenant', 'show', 'out-evil', '--json'], { config })).stdout);
    expect(j.tenant.name).toBe(name);
  });

  it('a name over 200 characters is refused, exit 2, without echoing it; nothing is created', async () => {
    const huge = 'n'.repeat(120_000);
    const r = await cli(['tenant', 'create', 'out-huge', '--tier', 'free', '--name', huge], { config });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--name is 120000 characters long; the limit is 200/);
    expect(r.stderr.length).toBeLessThan(1000);
    expect((await cli(['tenant', 'show', 'out-huge'], { config })).code).toBe(2);
    expect((await cli(['tenant', 'create', 'out-fine', '--tier', 'free', '--name', 'n'.repeat(200)], { config })).code).toBe(0);
  });
});
