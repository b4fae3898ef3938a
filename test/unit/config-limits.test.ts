import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig, parseConfig } from '../../src/config/load.js';
import { TenantctlError } from '../../src/errors.js';

/** A hostile or oversized config file is refused quickly, with a short, clear message. */
const FILE = '/repo/tenants.config.yaml';
const dir = mkdtempSync(join(tmpdir(), 'tenantctl-config-limits-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const VALID = `catalog:
  shard: us1
regions:
  us-east:
    shards:
      us1:
        url: postgres://a:b@127.0.0.1:5432/postgres
`;

function thrown(fn: () => unknown): TenantctlError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(TenantctlError);
    expect((err as TenantctlError).exitCode).toBe(2);
    return err as TenantctlError;
  }
  throw new Error('expected an error');
}

describe('config limits', () => {
  it('refuses a file over 1 MB before reading it, naming the limit', () => {
    const file = join(dir, 'huge.yaml');
    writeFileSync(file, `${VALID}# ${'x'.repeat(1024 * 1024)}\n`);
    const err = thrown(() => loadConfig({ file, env: {} }));
    expect(err.code).toBe('CONFIG_INVALID');
    expect(err.message).toContain(`${file} is 1.0 MB; a config may be at most 1 MB`);
    // The same limit for text handed to parseConfig directly.
    expect(thrown(() => parseConfig(`${VALID}# ${'x'.repeat(1024 * 1024)}\n`, FILE, {})).message).toContain('a config may be at most 1 MB');
  });

  it('reads a file just under the limit made of many keys in seconds, with a short message', { timeout: 120_000 }, () => {
    let text = `${VALID}defaults:\n`;
    for (let i = 0; text.length < 1000 * 1024; i++) text += `  k${i}: ${i}\n`;
    const started = Date.now();
    const err = thrown(() => parseConfig(text, FILE, {}));
    const elapsed = Date.now() - started;
    expect(err.message).toMatch(/defaults: unknown key\(s\) "k0", "k1", .*, "k9", … and \d+ more/);
    expect(err.message.length).toBeLessThan(2000);
    // It took over a minute when yaml compared every key with every other.
    expect(elapsed).toBeLessThan(20_000);
  });

  it('lists at most 30 problems, and says how many more there are', () => {
    let text = 'catalog:\n  url: postgres://a:b@control/catalog\nregions:\n';
    for (let i = 0; i < 200; i++) text += `  r${i}:\n    shards:\n      s${i}:\n        maxConnections: 5\n`;
    const err = thrown(() => parseConfig(text, FILE, {}));
    expect(err.message).toContain('has 200 problem(s)');
    expect(err.message).toContain('… and 170 more');
    expect(err.message.split('\n').length).toBeLessThan(40);
  });

  it('refuses an alias bomb at once with a clear message', () => {
    let text = `${VALID}x0: &x0 [a, a, a, a, a, a, a, a, a]\n`;
    for (let i = 1; i <= 9; i++) text += `x${i}: &x${i} [${Array.from({ length: 9 }, () => `*x${i - 1}`).join(', ')}]\n`;
    const started = Date.now();
    const err = thrown(() => parseConfig(text, FILE, {}));
    expect(Date.now() - started).toBeLessThan(2000);
    expect(err.code).toBe('CONFIG_YAML');
    expect(err.message).toContain('uses YAML aliases (*name) that expand too far');
    // A few anchors and aliases are still fine.
    const shared = `catalog:
  shard: us1
regions:
  us-east:
    shards:
      us1: &shard
        url: postgres://a:b@127.0.0.1:5432/postgres
        maxConnections: 7
      us2: *shard
`;
    expect(parseConfig(shared, FILE, {}).shards.map((s) => s.maxConnections)).toEqual([7, 7]);
  });

  it('refuses a key given twice in one mapping, with its line', () => {
    const err = thrown(() => parseConfig(`${VALID}defaults:\n  concurrency: 4\n  concurrency: 8\n`, FILE, {}));
    expect(err.code).toBe('CONFIG_YAML');
    expect(err.message).toContain('key "concurrency" appears twice in one mapping at line 10');
  });
});
