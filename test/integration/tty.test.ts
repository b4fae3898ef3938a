import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, inject, it } from 'vitest';
import { cli } from '../helpers/cli.js';

const config = inject('fleetConfigFile');
const BIN = fileURLToPath(new URL('../../bin/tenantctl', import.meta.url));

/** A key sequence typed once the output (so far) matches `after`: the prompt has drawn, or answered. */
type Keystroke = { after: RegExp; keys: string };

/**
 * Run the CLI in a pseudo-terminal (util-linux `script`), typing each keystroke once the screen
 * shows what it answers, as an operator at a terminal would. Waiting on the output, not on a
 * clock, keeps a slow start (a loaded CI machine) from typing before the prompt exists. A run
 * still going after `limitMs` is killed, so a prompt that never came fails with its screen.
 */
function inTerminal(args: string[], strokes: Keystroke[] = [], limitMs = 15_000): Promise<{ code: number | null; output: string }> {
  const command = [process.execPath, BIN, '--config', config, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  return new Promise((resolve, reject) => {
    const child = spawn('script', ['-qec', command, '/dev/null'], {
      env: { ...process.env, CI: undefined, NO_COLOR: undefined, TERM: 'xterm-256color' },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let output = '';
    let typedAt = 0; // how much of the output the last keystroke had seen: the next one needs new output
    const pending = [...strokes];
    const typeWhenDue = () => {
      const next = pending[0];
      if (next?.after.test(output.slice(typedAt))) {
        pending.shift();
        typedAt = output.length;
        child.stdin.write(next.keys);
      }
    };
    const onData = (d: Buffer) => {
      output += d;
      typeWhenDue();
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('error', reject);
    // A run that ended before its keys were due closes the pipe: not the test's failure.
    child.stdin.on('error', () => undefined);
    const limit = setTimeout(() => child.kill('SIGKILL'), limitMs);
    child.on('close', (code) => {
      clearTimeout(limit);
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
    const no = await inTerminal(['tenant', 'delete', 'tty-del'], [{ after: /delete tenant tty-del/, keys: 'n\r' }]);
    expect(no.output).toMatch(/delete tenant tty-del and all its data/);
    expect(no.code).toBe(2);
    expect((await cli(['tenant', 'show', 'tty-del'], { config })).code).toBe(0);
    const yes = await inTerminal(['tenant', 'delete', 'tty-del'], [{ after: /delete tenant tty-del/, keys: 'y\r' }]);
    expect(yes.code, yes.output).toBe(0);
    expect((await cli(['tenant', 'show', 'tty-del'], { config })).code).toBe(2);
  });

  it('asks for the slug when it is left out, and validates it as typed', async () => {
    // A bad slug first (rejected in place), then a good one, then defaults for tier and region.
    const r = await inTerminal(
      ['tenant', 'create', '--model', 'schema', '--shard', 'us1'],
      [
        { after: /Tenant slug/, keys: 'Bad\r' },
        { after: /upper case/, keys: '\x15tty-asked\r' },
      ],
    );
    expect(r.output).toMatch(/Tenant slug/);
    expect(r.output).toMatch(/upper case/);
    expect(r.code, r.output).toBe(0);
    expect(r.output).toMatch(/created tty-asked: schema on us1/);
  }, 30_000);
});
