import { mkdtempSync, openSync, readdirSync, readFileSync, readSync, closeSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { cli } from '../helpers/cli.js';

/**
 * `--metrics-file` (issue 21 item 2): the built CLI against the shared fleet writes a Prometheus
 * textfile; the tests parse it as a scraper would (prom-client's exposition format).
 */
const config = inject('fleetConfigFile');
const dir = mkdtempSync(join(tmpdir(), 'tenantctl-metrics-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The text exposition format: `# HELP`/`# TYPE` lines, then `name{label="value",…} number`. */
function parse(text: string): { samples: Sample[]; types: Record<string, string> } {
  const samples: Sample[] = [];
  const types: Record<string, string> = {};
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    const type = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (type) types[type[1]] = type[2];
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    expect(m, `not a sample line: ${line}`).not.toBeNull();
    const labels: Record<string, string> = {};
    for (const l of (m![2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2].replace(/\\(.)/g, '$1');
    samples.push({ name: m![1], labels, value: Number(m![3]) });
  }
  return { samples, types };
}

function value(samples: Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  return samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;
}

const read = (file: string) => parse(readFileSync(file, 'utf8')).samples;

describe('--metrics-file', () => {
  it('backup create: duration, outcomes, last success, per tenant; a failed run keeps the last success', async () => {
    expect((await cli(['tenant', 'create', 'met-a', '--tier', 'standard'], { config })).code).toBe(0);
    const file = join(dir, 'backup.prom');
    const before = Date.now() / 1000;
    const ok = await cli(['backup', 'create', 'met-a', '--metrics-file', file], { config });
    expect(ok.code, ok.stderr).toBe(0);
    const { samples, types } = parse(readFileSync(file, 'utf8'));
    const command = { command: 'backup create' };
    expect(types.tenantctl_last_success_timestamp_seconds).toBe('gauge');
    expect(value(samples, 'tenantctl_run_success', command)).toBe(1);
    expect(value(samples, 'tenantctl_run_exit_code', command)).toBe(0);
    expect(value(samples, 'tenantctl_run_duration_seconds', command)).toBeGreaterThan(0);
    expect(value(samples, 'tenantctl_run_outcomes', { ...command, outcome: 'succeeded' })).toBe(1);
    expect(value(samples, 'tenantctl_run_outcomes', { ...command, outcome: 'failed' })).toBe(0);
    expect(value(samples, 'tenantctl_tenant_outcome', { ...command, tenant: 'met-a', outcome: 'succeeded' })).toBe(1);
    const lastSuccess = value(samples, 'tenantctl_last_success_timestamp_seconds', command)!;
    expect(lastSuccess).toBeGreaterThanOrEqual(before);

    // A reader holding the old file open keeps a whole old file: the new one was renamed over it.
    const fd = openSync(file, 'r');
    const oldIno = statSync(file).ino;
    try {
      const failed = await cli(['backup', 'create', 'met-no-such-tenant', '--metrics-file', file], { config });
      expect(failed.code).toBe(2);
      const after = read(file);
      expect(value(after, 'tenantctl_run_success', command)).toBe(0);
      expect(value(after, 'tenantctl_run_exit_code', command)).toBe(2);
      expect(value(after, 'tenantctl_run_outcomes', { ...command, outcome: 'error' })).toBe(1);
      expect(value(after, 'tenantctl_run_error', { ...command, code: 'TENANT_NOT_FOUND' })).toBe(1);
      expect(value(after, 'tenantctl_last_success_timestamp_seconds', command)).toBe(lastSuccess);
      expect(statSync(file).ino).not.toBe(oldIno);
      const buf = Buffer.alloc(64 * 1024);
      const n = readSync(fd, buf, 0, buf.length, 0);
      expect(value(parse(buf.subarray(0, n).toString('utf8')).samples, 'tenantctl_run_success', command)).toBe(1);
    } finally {
      closeSync(fd);
    }
    // Nothing left beside it: the temporary file was renamed, not copied.
    expect(readdirSync(dir).filter((f) => f !== 'backup.prom' && f.startsWith('.backup.prom'))).toEqual([]);
  });

  it('a run that never succeeded says last success 0; an unreachable catalog is counted as an error', async () => {
    const text = readFileSync(config, 'utf8');
    const port = /us1:\s*\n\s*url: postgres:\/\/[^\n]*127\.0\.0\.1:(\d+)/.exec(text)![1];
    const down = join(dir, 'down.yaml');
    writeFileSync(down, text.replaceAll(`127.0.0.1:${port}/`, '127.0.0.1:1/'));
    const file = join(dir, 'prune.prom');
    const r = await cli(['backup', 'prune', '--keep-last', '3', '--metrics-file', file], { config: down });
    expect(r.code).not.toBe(0);
    const samples = read(file);
    const command = { command: 'backup prune' };
    expect(value(samples, 'tenantctl_run_success', command)).toBe(0);
    expect(value(samples, 'tenantctl_last_success_timestamp_seconds', command)).toBe(0);
    expect(value(samples, 'tenantctl_run_outcomes', { ...command, outcome: 'error' })).toBe(1);
  });

  it('migrate up, backup prune and audit write their own outcomes', async () => {
    expect((await cli(['tenant', 'create', 'met-b', '--tier', 'free'], { config })).code).toBe(0);
    const up = join(dir, 'migrate.prom');
    const m = await cli(['migrate', 'up', '--tenant', 'met-b', '--metrics-file', up], { config });
    expect(m.code, m.stderr).toBe(0);
    const ms = read(up);
    expect(value(ms, 'tenantctl_run_success', { command: 'migrate up' })).toBe(1);
    expect(value(ms, 'tenantctl_tenant_outcome', { command: 'migrate up', tenant: 'met-b' })).toBe(1);

    const prune = join(dir, 'prune-ok.prom');
    const p = await cli(['backup', 'prune', '--tenant', 'met-a', '--keep-last', '5', '--dry-run', '--metrics-file', prune], { config });
    expect(p.code, p.stderr).toBe(0);
    const ps = read(prune);
    expect(value(ps, 'tenantctl_run_outcomes', { command: 'backup prune', outcome: 'kept' })).toBeGreaterThanOrEqual(1);
    expect(value(ps, 'tenantctl_tenant_outcome', { command: 'backup prune', tenant: 'met-a', outcome: 'kept' })).toBe(1);

    const audit = join(dir, 'audit.prom');
    const a = await cli(['audit', '--tenant', 'met-a,met-b', '--no-probes', '--metrics-file', audit], { config });
    const as = read(audit);
    expect(value(as, 'tenantctl_run_exit_code', { command: 'audit' })).toBe(a.code);
    for (const tenant of ['met-a', 'met-b'])
      expect(as.find((s) => s.name === 'tenantctl_tenant_outcome' && s.labels.tenant === tenant)?.labels.outcome).toMatch(
        /^(clean|critical|high|medium|low)$/,
      );
    expect(value(as, 'tenantctl_run_outcomes', { command: 'audit', outcome: 'units_failed' })).toBe(0);
  });

  it('a folder that does not exist is exit 2 before anything runs', async () => {
    const r = await cli(['backup', 'create', 'met-a', '--metrics-file', join(dir, 'missing', 'x.prom')], { config });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--metrics-file .*does not exist/);
    expect(r.stdout).not.toMatch(/met-a:/);
    // usage's own textfile too (it was an unexpected error, exit 1, after the whole measurement).
    const u = await cli(['usage', '--metrics-file', join(dir, 'missing', 'u.prom')], { config });
    expect(u.code, u.stdout + u.stderr).toBe(2);
    expect(u.stderr).toMatch(/--metrics-file .*missing\/u\.prom: the folder .* does not exist/);
    expect(u.stderr).not.toMatch(/unexpected error/);
    // A folder where the file goes: exit 2 before the backup (it was taken, then the rename failed).
    const f = await cli(['backup', 'create', 'met-a', '--metrics-file', dir], { config });
    expect(f.code, f.stdout + f.stderr).toBe(2);
    expect(f.stderr).toMatch(/--metrics-file .* is a folder, not a file/);
    expect(f.stdout).not.toMatch(/met-a:/);
  });
});
