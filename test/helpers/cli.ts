import { spawn } from 'node:child_process';
import { appendFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';

const BIN = fileURLToPath(new URL('../../bin/tenantctl', import.meta.url));

export interface CliRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * Run the built CLI the way a CI job does: piped, no TTY, CI variables as given.
 *
 * @example
 *   const r = await cli(['tenant', 'list', '--json'], { config });
 */
export function cli(
  args: string[],
  opts: { config?: string; env?: NodeJS.ProcessEnv; onSpawn?: (pid: number) => void; onStderr?: (soFar: string) => void } = {},
): Promise<CliRun> {
  const full = opts.config ? ['--config', opts.config, ...args] : args;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...profileFlags(), BIN, ...full], {
      env: { ...process.env, NO_COLOR: undefined, FORCE_COLOR: undefined, ...opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => {
      stderr += d;
      opts.onStderr?.(stderr);
    });
    child.on('error', reject);
    if (child.pid) opts.onSpawn?.(child.pid);
    const started = Date.now();
    child.on('close', (code, signal) => {
      logRun(args, Date.now() - started, child.pid);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/**
 * TENANTCTL_TEST_CLI_PROF=<folder>: each CLI run writes a V8 CPU profile there (node's `--cpu-prof`,
 * which NODE_OPTIONS does not take), named by its pid, to see where the runs' CPU goes.
 */
function profileFlags(): string[] {
  const dir = process.env.TENANTCTL_TEST_CLI_PROF;
  return dir ? ['--cpu-prof', `--cpu-prof-dir=${dir}`] : [];
}

/**
 * TENANTCTL_TEST_CLI_LOG=<file>: one JSON line per CLI run (test file, test, command, wall ms, pid), to
 * count where a file's time goes (CLI runs are most of it; the pid joins a run to its CPU in process
 * accounting or to its `--cpu-prof` profile). Off unless set.
 */
function logRun(args: string[], ms: number, pid: number | undefined): void {
  const log = process.env.TENANTCTL_TEST_CLI_LOG;
  if (!log) return;
  const { testPath, currentTestName } = expect.getState();
  const command = args
    .filter((a) => !a.startsWith('-'))
    .slice(0, 2)
    .join(' ');
  appendFileSync(log, `${JSON.stringify({ file: testPath, test: currentTestName, command, ms, pid })}\n`);
}
