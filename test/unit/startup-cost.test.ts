import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

/**
 * Work every command's start-up used to pay for nothing (bench/help-startup.sh measures the
 * CPU; these pin the behaviour, not a time). Each test imports the module fresh
 * (vi.resetModules before and after), as a new process would: a worker runs file after file
 * (vitest.config.ts, `isolate: false`), so an earlier file may have loaded them already.
 */
const SHIPPED_FILE = fileURLToPath(new URL('../../tenants.config.yaml', import.meta.url));

beforeEach(() => {
  vi.resetModules();
});
afterEach(() => {
  vi.resetModules();
});

/** Replace the constructor `owner[key]` with one that counts `new`; `restore` puts it back. */
function countConstructions(owner: object, key: string): { count: () => number; restore: () => void } {
  const slot = owner as Record<string, new (...args: unknown[]) => unknown>;
  const original = slot[key];
  let made = 0;
  slot[key] = new Proxy(original, {
    construct(target, args, newTarget) {
      made++;
      return Reflect.construct(target, args, newTarget);
    },
  });
  return { count: () => made, restore: () => void (slot[key] = original) };
}

describe('start-up cost', () => {
  it('natural sort makes its ICU collator on first use, not when its module loads', async () => {
    const collators = countConstructions(Intl, 'Collator');
    try {
      const { naturalCompare } = await import('../../src/report/natural-sort.js');
      expect(collators.count()).toBe(0);
      expect(['csv-20', 'csv-2', 'csv-19'].sort(naturalCompare)).toEqual(['csv-2', 'csv-19', 'csv-20']);
      expect(naturalCompare('a2', 'a10')).toBeLessThan(0);
      expect(collators.count()).toBe(1);
    } finally {
      collators.restore();
    }
  });

  it('the config parse compiles no code (zod/mini objects: no new Function fast path)', async () => {
    // Fresh schema objects (afterEach resets the modules): zod's classic objects compile their
    // fast path on their first parse only.
    const { parseConfig } = await import('../../src/config/load.js');
    const functions = countConstructions(globalThis, 'Function');
    try {
      const config = parseConfig(readFileSync(SHIPPED_FILE, 'utf8'), SHIPPED_FILE, {});
      expect(config.shards.map((s) => s.name)).toEqual(['us1', 'us2', 'eu1']);
    } finally {
      functions.restore();
    }
    expect(functions.count()).toBe(0);
  });

  it("the config schemas (zod/mini) keep zod's English messages for the checks without one of their own", async () => {
    const { parseConfig } = await import('../../src/config/load.js');
    const text = [
      'catalog:',
      '  shard: us1',
      'regions:',
      '  us-east:',
      "    backup: { dir: '', compression: zip }",
      '    shards:',
      '      us1:',
      '        url: postgres://postgres:pw@127.0.0.1:55431/postgres',
      '        pitr: { pgPath: 5 }',
      'tenantKey:',
      '  type: int',
    ].join('\n');
    // The messages the classic API gave (the build before zod/mini, same input).
    expect(() => parseConfig(text, '/repo/tenants.config.yaml', {})).toThrow(
      [
        '/repo/tenants.config.yaml has 4 problem(s):',
        '  regions.us-east.shards.us1.pitr.pgPath: Invalid input: expected string, received number',
        '  regions.us-east.backup.dir: Too small: expected string to have >=1 characters',
        '  regions.us-east.backup.compression: Invalid option: expected one of "brotli"|"gzip"|"none"',
        '  tenantKey.type: Invalid option: expected one of "uuid"|"bigint"|"text"',
      ].join('\n'),
    );
  });
});
