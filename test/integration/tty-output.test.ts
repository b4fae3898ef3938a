import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { cli } from '../helpers/cli.js';

const config = inject('fleetConfigFile');
const BIN = fileURLToPath(new URL('../../bin/tenantctl', import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), 'tenantctl-tty-out-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const sh = (a: string) => `'${a.replace(/'/g, `'\\''`)}'`;

/**
 * The CLI in a pseudo-terminal (util-linux `script`) of `rows` lines; `keys` typed once `when`
 * says so (it sees the output so far).
 */
function inTerminal(
  args: string[],
  opts: { rows?: number; env?: NodeJS.ProcessEnv; keys?: string; when?: (output: string) => boolean } = {},
): Promise<{ code: number | null; output: string }> {
  const command = `stty rows ${opts.rows ?? 40} cols 160; exec ${[process.execPath, BIN, '--config', config, ...args].map(sh).join(' ')}`;
  return new Promise((resolve, reject) => {
    const child = spawn('script', ['-qec', command, '/dev/null'], {
      env: { ...process.env, CI: undefined, NO_COLOR: undefined, TERM: 'xterm-256color', ...opts.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let output = '';
    let typed = false;
    const onData = (d: Buffer) => {
      output += d;
      if (!typed && opts.keys && opts.when?.(output)) {
        typed = true;
        child.stdin.write(opts.keys);
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('error', reject);
    child.on('close', (code) => {
      child.stdin.destroy();
      resolve({ code, output });
    });
  });
}

/** What a person sees last: the text without escape sequences, each redrawn line once. */
function plain(output: string): string[] {
  return output
    .replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '')
    .split(/\r?\n|\r/)
    .map((l) => l.trimEnd())
    .filter(Boolean);
}

describe('the live view at a terminal', () => {
  it('Ctrl-C during tenant create --from-file: the last frame says interrupted with counts, then how to finish; exit 130', async () => {
    const n = 300;
    const file = join(tmp, 'many.csv');
    writeFileSync(file, `slug,tier\n${Array.from({ length: n }, (_, i) => `ttyo-${i + 1},free`).join('\n')}\n`);
    // Ctrl-C once a few tenants are done (the live view counts them as it runs).
    const r = await inTerminal(['tenant', 'create', '--from-file', file, '--concurrency', '2'], {
      keys: '\x03',
      when: (o) => /tenant create: ([5-9]|\d\d+)\/300 finished/.test(o),
    });
    const lines = plain(r.output);
    expect(r.code, r.output.slice(-2000)).toBe(130);
    // The last frame of the live view: ✖ and the true outcome, never "✔ 300/300 done".
    const frames = lines.filter((l) => /^[✔✖❯⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏↓]/.test(l.trim()));
    const last = frames[frames.length - 1].trim();
    expect(last).toMatch(/^✖ tenant create: interrupted: (\d+) succeeded, 0 failed, (\d+) not run of 300$/);
    const [, ok, notRun] = /(\d+) succeeded, 0 failed, (\d+) not run/.exec(last)!.map(Number);
    expect(ok).toBeGreaterThan(0);
    expect(ok + notRun).toBe(n);
    expect(r.output).not.toMatch(/✔/);
    // The summary agrees with the frame, and the command that finishes the job is printed.
    expect(lines).toContainEqual(
      expect.stringMatching(new RegExp(`^tenant create \\(interrupted\\): ${ok} succeeded, 0 failed, 0 skipped, ${notRun} not run of 300`)),
    );
    const finish = lines.find((l) => l.startsWith('to finish: '));
    expect(finish).toBe(`to finish: tenantctl --config ${config} tenant create --from-file ${file} --concurrency 2`);
    // The catalog agrees: exactly the tenants counted as done exist, all active.
    const listed = JSON.parse((await cli(['tenant', 'list', '--tier', 'free', '--json'], { config })).stdout).tenants.filter(
      (t: { slug: string }) => t.slug.startsWith('ttyo-'),
    );
    expect(listed).toHaveLength(ok);
    expect(listed.every((t: { status: string }) => t.status === 'active')).toBe(true);
  }, 120_000);

  it('a list taller than the terminal goes through the pager; one that fits does not', async () => {
    const file = join(tmp, 'page.csv');
    const slugs = Array.from({ length: 12 }, (_, i) => `ttyp-${i + 1}`);
    writeFileSync(file, `slug,tier\n${slugs.map((s) => `${s},free`).join('\n')}\n`);
    expect((await cli(['tenant', 'create', '--from-file', file], { config })).code).toBe(0);
    const env = { PAGER: "sed 's/^/PAGED: /'", TENANTCTL_PAGER: undefined };
    const tall = await inTerminal(['tenant', 'list', '--tenant', slugs.join(',')], { rows: 8, env });
    expect(tall.code, tall.output).toBe(0);
    expect(tall.output).toMatch(/PAGED: .*ttyp-12/);
    // Compact: one rule under the header, none between rows.
    expect(plain(tall.output).filter((l) => l.includes('├'))).toHaveLength(1);
    const short = await inTerminal(['tenant', 'list', '--tenant', 'ttyp-1'], { rows: 40, env });
    expect(short.code).toBe(0);
    expect(short.output).not.toMatch(/PAGED/);
    expect(short.output).toMatch(/ttyp-1/);
  }, 60_000);
});
