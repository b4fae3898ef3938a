import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, inject, it } from 'vitest';
import { cli } from '../helpers/cli.js';

const config = inject('fleetConfigFile');
const BIN = fileURLToPath(new URL('../../bin/tenantctl', import.meta.url));

/**
 * Run the CLI in a pseudo-terminal (util-linux `script`), typing `keys` after `delayMs`, as an
 * operator at a terminal would.
 */
function inTerminal(args: string[], keys: string | string[] = '', delayMs = 1500): Promise<{ code: number | null; output: string }> {
  const command = [process.execPath, BIN, '--config', config, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  return new Promise((resolve, reject) => {
    const child = spawn('script', ['-qec', command, '/dev/null'], {
      env: { ...process.env, CI: undefined, NO_COLOR: undefined, TERM: 'xterm-256color' },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    child.on('error', reject);
    // A run that ended before its keys were due closes the pipe: not the test's failure.
    child.stdin.on('error', () => undefined);
    // Each key sequence after its own pause, so the prompt has drawn and validated in between.
    (Array.isArray(keys) ? keys : [keys]).forEach((k, i) => setTimeout(() => child.stdin.write(k), delayMs * (i + 1)));
    child.on('close', (code) => {
      child.stdin.destroy();
      resolve({ code, output });
    });
  });
}

describe('the CLI at a terminal', () => {
  it('draws tables and colours on a TTY, plain tab-separated lines when piped', async () => {
    await cli(['tenant', 'create', 'tty-table', '--tier', 'free'], { config });
    const tty = await inTerminal(['tenant', 'list', '--tenant', 'tty-table']);
    expect(tty.output).toMatch(/┌/);
    expect(tty.output).toMatch(/\x1b\[/);
    const piped = await cli(['tenant', 'list', '--tenant', 'tty-table'], { config });
    expect(piped.stdout).toMatch(/^slug\tmodel\ttier/);
    expect(piped.stdout).not.toMatch(/┌|\x1b\[/);
  });

  it('asks before deleting; answering no changes nothing (exit 2), yes deletes', async () => {
    await cli(['tenant', 'create', 'tty-del', '--tier', 'standard'], { config });
    const no = await inTerminal(['tenant', 'delete', 'tty-del'], 'n\r');
    expect(no.output).toMatch(/delete tenant tty-del and all its data/);
    expect(no.code).toBe(2);
    expect((await cli(['tenant', 'show', 'tty-del'], { config })).code).toBe(0);
    const yes = await inTerminal(['tenant', 'delete', 'tty-del'], 'y\r');
    expect(yes.code, yes.output).toBe(0);
    expect((await cli(['tenant', 'show', 'tty-del'], { config })).code).toBe(2);
  });

  it('asks for the slug when it is left out, and validates it as typed', async () => {
    // A bad slug first (rejected in place), then a good one, then defaults for tier and region.
    const r = await inTerminal(['tenant', 'create', '--model', 'schema', '--shard', 'us1'], ['Bad\r', '\x15tty-asked\r'], 1200);
    expect(r.output).toMatch(/Tenant slug/);
    expect(r.output).toMatch(/upper case/);
    expect(r.code, r.output).toBe(0);
    expect(r.output).toMatch(/created tty-asked: schema on us1/);
  }, 20_000);
});
