import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { parseDocument } from 'yaml';
import { cli } from '../helpers/cli.js';

/** Help, no command, and `dev status` exit codes (issue 21's small faults), on the built CLI. */
const config = inject('fleetConfigFile');
const tmp = mkdtempSync(join(tmpdir(), 'tenantctl-help-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** The subcommands a help text lists under "Commands:". */
function subcommands(help: string): string[] {
  const section = help.split(/\nCommands:\n/)[1];
  if (!section) return [];
  return [...section.split(/\n\n/)[0].matchAll(/^ {2}([a-z][a-z-]*)/gm)].map((m) => m[1]).filter((c) => c !== 'help');
}

describe('help and usage', () => {
  it('tenantctl with no command prints the help on stderr and exits 2; so does a group without its verb', async () => {
    for (const args of [[], ['backup'], ['tenant']]) {
      const r = await cli(args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stdout).toBe('');
      expect(r.stderr).toMatch(/^Usage: tenantctl/);
    }
    const help = await cli(['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^Usage: tenantctl/);
  });

  it('every help prints Usage first and its examples after the options', async () => {
    const seen: string[] = [];
    let level: string[][] = [[]];
    while (level.length) {
      const helps = await Promise.all(level.map((path) => cli([...path, '--help'])));
      const next: string[][] = [];
      helps.forEach((r, i) => {
        const path = level[i].join(' ') || 'tenantctl';
        seen.push(path);
        expect(r.code, path).toBe(0);
        expect(r.stdout.startsWith('Usage: '), `${path}: ${r.stdout.slice(0, 80)}`).toBe(true);
        const example = r.stdout.search(/^Examples?:/m);
        if (example !== -1) expect(example, path).toBeGreaterThan(r.stdout.indexOf('Options:'));
        for (const sub of subcommands(r.stdout)) next.push([...level[i], sub]);
      });
      level = next;
    }
    expect(seen).toEqual(expect.arrayContaining(['tenantctl', 'tenant create', 'backup prune', 'migrate up', 'dev status']));
  });
});

describe('dev status', () => {
  it('exits 0 when every embedded shard runs and 1 when one is not running', async () => {
    expect((await cli(['dev', 'status'], { config })).code).toBe(0);
    // The same shards with a data folder where no cluster was ever made: not running.
    const doc = parseDocument(readFileSync(config, 'utf8'));
    doc.setIn(['dev', 'dataDir'], join(tmp, 'no-clusters'));
    const down = join(tmp, 'down.yaml');
    writeFileSync(down, doc.toString());
    const r = await cli(['dev', 'status', '--json'], { config: down });
    expect(r.code).toBe(1);
    const out = JSON.parse(r.stdout) as { ok: boolean; results: { state: string }[] };
    expect(out.ok).toBe(false);
    expect(out.results.every((x) => x.state === 'not running')).toBe(true);
  });
});
