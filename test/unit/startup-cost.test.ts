import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it, vi } from 'vitest';

/**
 * Work every command's start-up used to pay for nothing (bench/help-startup.sh measures the
 * CPU; these pin the behaviour, not a time). Each test imports the module fresh
 * (vi.resetModules), as a new process would.
 */
const SHIPPED_FILE = fileURLToPath(new URL('../../tenants.config.yaml', import.meta.url));

afterEach(() => {
  vi.resetModules();
});

describe('start-up cost', () => {
  it('natural sort makes its ICU collator on first use, not when its module loads', async () => {
    vi.resetModules();
    const original = Intl.Collator;
    let made = 0;
    Intl.Collator = new Proxy(original, {
      construct(target, args, newTarget) {
        made++;
        return Reflect.construct(target, args, newTarget);
      },
    });
    try {
      const { naturalCompare } = await import('../../src/report/natural-sort.js');
      expect(made).toBe(0);
      expect(['csv-20', 'csv-2', 'csv-19'].sort(naturalCompare)).toEqual(['csv-2', 'csv-19', 'csv-20']);
      expect(naturalCompare('a2', 'a10')).toBeLessThan(0);
      expect(made).toBe(1);
    } finally {
      Intl.Collator = original;
    }
  });

  it('the config parse compiles no code (zod without its new Function fast path)', async () => {
    vi.resetModules();
    // Fresh schema objects: zod compiles an object schema's fast path on its first parse only.
    const { parseConfig } = await import('../../src/config/load.js');
    const original = globalThis.Function;
    let compiled = 0;
    globalThis.Function = new Proxy(original, {
      construct(target, args, newTarget) {
        compiled++;
        return Reflect.construct(target, args, newTarget);
      },
    });
    try {
      const config = parseConfig(readFileSync(SHIPPED_FILE, 'utf8'), SHIPPED_FILE, {});
      expect(config.shards.map((s) => s.name)).toEqual(['us1', 'us2', 'eu1']);
    } finally {
      globalThis.Function = original;
    }
    expect(compiled).toBe(0);
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
