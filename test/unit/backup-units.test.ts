import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { RowTap } from '../../src/copy/row-tap.js';
import { decryptStream, encryptStream, unwrapKey, wrapKey } from '../../src/backup/crypto.js';
import { compressionOf, manifestChecksum, parseManifest, sealManifest, type Manifest } from '../../src/backup/manifest.js';
import { COMPRESSIONS, compressStream, decompressStream } from '../../src/backup/compression.js';
import { planPrune } from '../../src/backup/prune.js';
import { restoreNeeds } from '../../src/backup/verify-constraints.js';
import { newBackupId, slugOfBackupId } from '../../src/backup/storage.js';

async function run(chunks: Buffer[], ...streams: NodeJS.ReadWriteStream[]): Promise<Buffer> {
  const out: Buffer[] = [];
  await pipeline([Readable.from(chunks), ...streams, new Writable({ write: (c, _e, cb) => (out.push(c), cb()) })] as never);
  return Buffer.concat(out);
}

async function tap(text: string, keyIndex: number, chunkSize = 7, rewriteKey?: string) {
  const buf = Buffer.from(text);
  const chunks: Buffer[] = [];
  for (let i = 0; i < buf.length; i += chunkSize) chunks.push(buf.subarray(i, i + chunkSize));
  const t = new RowTap({ keyIndex, rewriteKey });
  const out = await run(chunks, t);
  return { digest: t.digest(), out: out.toString() };
}

describe('RowTap', () => {
  const rows = 'k1\ta\t1\nk1\tb\\tx\t2\nk1\tc\t\\N\n';
  it('counts rows and hashes them independently of order and chunking', async () => {
    const a = await tap(rows, 0, 3);
    const b = await tap('k1\tc\t\\N\nk1\ta\t1\nk1\tb\\tx\t2\n', 0, 100);
    expect(a.digest.rows).toBe(3);
    expect(a.digest.hash).toBe(b.digest.hash);
    expect(a.digest.sha256).not.toBe(b.digest.sha256); // the bytes differ, the rows do not
    expect(a.out).toBe(rows);
  });
  it('blanks the key column, so a clone under another key hashes the same; other changes do not', async () => {
    const a = await tap(rows, 0);
    const other = await tap(rows.replace(/k1/g, 'k2'), 0);
    expect(other.digest.hash).toBe(a.digest.hash);
    const changed = await tap(rows.replace('\ta\t', '\tA\t'), 0);
    expect(changed.digest.hash).not.toBe(a.digest.hash);
    const dup = await tap(`${rows}k1\ta\t1\n`, 0);
    expect(dup.digest.hash).not.toBe(a.digest.hash);
  });
  it('rewrites the key field in the middle of a row and at its end', async () => {
    expect((await tap('1\tk1\tx\n2\tk1\ty\n', 1, 4, 'NEW')).out).toBe('1\tNEW\tx\n2\tNEW\ty\n');
    expect((await tap('1\tk1\n', 1, 2, 'NEW')).out).toBe('1\tNEW\n');
  });
  it('fails on a row cut off at the end (truncated data)', async () => {
    await expect(tap('k1\ta\nk1\tb', 0)).rejects.toThrow(/middle of a row/);
  });
});

describe('AES-256-GCM streams', () => {
  const key = Buffer.alloc(32, 1);
  const data = Buffer.from(`${'x'.repeat(100_000)}end`);
  const chunks = (b: Buffer, n = 4096) => Array.from({ length: Math.ceil(b.length / n) }, (_, i) => b.subarray(i * n, (i + 1) * n));
  it('round-trips in chunks of any size', async () => {
    const enc = await run(chunks(data), encryptStream(key));
    expect(enc.subarray(0, 4).toString()).toBe('TCE1');
    expect(enc.includes(Buffer.from('xxxxxxxx'))).toBe(false);
    expect((await run(chunks(enc, 5), decryptStream(key, 'f'))).equals(data)).toBe(true);
    expect((await run([], encryptStream(key), decryptStream(key, 'f'))).length).toBe(0);
  });
  it('refuses an altered byte, a truncated file and another key', async () => {
    const enc = await run(chunks(data), encryptStream(key));
    const bad = Buffer.from(enc);
    bad[100] ^= 1;
    await expect(run([bad], decryptStream(key, 'f'))).rejects.toThrow(/authentication failed/);
    await expect(run([enc.subarray(0, enc.length - 5)], decryptStream(key, 'f'))).rejects.toThrow(/authentication failed|truncated/);
    await expect(run([enc], decryptStream(Buffer.alloc(32, 2), 'f'))).rejects.toThrow(/authentication failed/);
  });
  it('wraps data keys; another master key is a clear error', () => {
    const w = wrapKey(key, Buffer.alloc(32, 5));
    expect(unwrapKey(key, w).equals(Buffer.alloc(32, 5))).toBe(true);
    expect(() => unwrapKey(Buffer.alloc(32, 3), w)).toThrow(/not the master key/);
  });
});

describe('manifest', () => {
  const m = sealManifest({
    format: 1,
    id: 'acme.20260101T000000000Z',
    createdAt: '2026-01-01T00:00:00.000Z',
    tool: { name: 'tenantctl', version: '0.1.0' },
    tenant: {
      slug: 'acme',
      key: 'k',
      name: 'Acme',
      tier: 'free',
      model: 'pool',
      region: 'us-east',
      shard: 'us1',
      database: 'tenant_pool',
      schema: 'app',
      residency: null,
    },
    keyType: 'uuid',
    migrations: { version: '0001_a', applied: [{ id: '0001_a', checksum: 'c' }] },
    tables: [],
    dump: null,
    encryption: null,
  } as Omit<Manifest, 'checksum'>);
  it('checks its own checksum, whatever the key order', () => {
    const text = JSON.stringify(m);
    expect(parseManifest(text, 'b').id).toBe(m.id);
    const reordered = JSON.stringify(Object.fromEntries(Object.entries(m).reverse()));
    expect(parseManifest(reordered, 'b').checksum).toBe(manifestChecksum(m));
    expect(() => parseManifest(text.replace('"Acme"', '"Acne"'), 'b')).toThrow(/altered/);
    expect(() => parseManifest(text.replace('"format":1', '"format":7'), 'b')).toThrow(/manifest format 7 is unknown/);
    expect(() => parseManifest(text.slice(0, 50), 'b')).toThrow(/not valid JSON/);
  });
  it('reads format 1 (gzip, no compression field) and format 2 (names its compression); refuses a mix', () => {
    expect(compressionOf(parseManifest(JSON.stringify(m), 'b'))).toBe('gzip');
    const { checksum: _c, ...body } = m;
    const two = sealManifest({ ...body, format: 2, compression: 'brotli' });
    expect(compressionOf(parseManifest(JSON.stringify(two), 'b'))).toBe('brotli');
    expect(compressionOf(parseManifest(JSON.stringify(sealManifest({ ...body, format: 2, compression: 'none' })), 'b'))).toBe('none');
    expect(() => parseManifest(JSON.stringify(sealManifest({ ...body, format: 2 })), 'b')).toThrow(/format 2 names its compression/);
    expect(() => parseManifest(JSON.stringify(sealManifest({ ...body, compression: 'gzip' })), 'b')).toThrow(
      /format 1 has no compression field/,
    );
    expect(() => parseManifest(JSON.stringify(sealManifest({ ...body, format: 2, compression: 'lz4' as never })), 'b')).toThrow(
      /malformed at compression/,
    );
  });
});

describe('manifest format 3: the source constraints', () => {
  const { checksum: _c, ...body } = sealManifest({
    format: 1,
    id: 'acme.20260101T000000000Z',
    createdAt: '2026-01-01T00:00:00.000Z',
    tool: { name: 'tenantctl', version: '0.1.0' },
    tenant: {
      slug: 'acme',
      key: 'k',
      name: 'Acme',
      tier: 'free',
      model: 'pool',
      region: 'us-east',
      shard: 'us1',
      database: 'tenant_pool',
      schema: 'app',
      residency: null,
    },
    keyType: 'uuid',
    migrations: { version: '0001_a', applied: [{ id: '0001_a', checksum: 'c' }] },
    tables: [],
    dump: null,
    encryption: null,
  } as Omit<Manifest, 'checksum'>);
  const constraints = [
    { table: 'users', name: 'users_no_u1', type: 'check' as const, valid: false, violatingRows: 1 },
    { table: 'users', name: 'users_email_check', type: 'check' as const, valid: true },
    { table: 'projects', name: 'projects_template_fk', type: 'foreign key' as const, valid: false, violatingRows: 0 },
  ];
  it('format 3 records them; format 2 has none; a mix is refused', () => {
    const three = parseManifest(JSON.stringify(sealManifest({ ...body, format: 3, compression: 'brotli', constraints })), 'b');
    expect(three.constraints).toEqual(constraints);
    expect(() => parseManifest(JSON.stringify(sealManifest({ ...body, format: 3, compression: 'brotli' })), 'b')).toThrow(
      /malformed at constraints: format 3 records its constraints/,
    );
    expect(() => parseManifest(JSON.stringify(sealManifest({ ...body, format: 2, compression: 'gzip', constraints })), 'b')).toThrow(
      /format 2 has no constraints field/,
    );
    expect(parseManifest(JSON.stringify(sealManifest({ ...body, format: 2, compression: 'gzip' })), 'b').constraints).toBeUndefined();
  });
  it('backup verify names the NOT VALID ones and what a restore does; not recorded before format 3', () => {
    const needs = restoreNeeds({ constraints })!;
    expect(needs.map((k) => k.name)).toEqual(['users_no_u1', 'projects_template_fk']);
    expect(needs[0].restore).toMatch(/1 row\(s\) break it: .* re-added NOT VALID .*ACCESS EXCLUSIVE on users until the commit/);
    expect(needs[1].restore).toMatch(/no row breaks it/);
    expect(restoreNeeds({})).toBeNull();
    expect(restoreNeeds({ constraints: [constraints[1]] })).toEqual([]);
  });
});

describe('compression streams', () => {
  for (const c of COMPRESSIONS) {
    it(`${c}: round-trips COPY text in chunks of any size`, async () => {
      const text = Buffer.from(Array.from({ length: 5000 }, (_, i) => `${i}\tsome text ${i % 7}\t\\N\n`).join(''));
      const stored = await run([text.subarray(0, 7), text.subarray(7, 70_000), text.subarray(70_000)], compressStream(c));
      if (c === 'none') expect(stored.equals(text)).toBe(true);
      else expect(stored.length).toBeLessThan(text.length / 3);
      expect((await run([stored.subarray(0, 3), stored.subarray(3)], decompressStream(c))).equals(text)).toBe(true);
    });
  }
});

describe('backup ids and prune', () => {
  it('ids carry the slug and sort by time', () => {
    const id = newBackupId('acme-corp', new Date('2026-11-26T22:53:17.123Z'));
    expect(id).toBe('acme-corp.20261126T225317123Z');
    expect(slugOfBackupId(id)).toBe('acme-corp');
    expect(slugOfBackupId('../etc.20261126T225317123Z')).toBeNull();
  });
  const now = new Date('2026-02-01T00:00:00Z');
  const at = (slug: string, day: number) => ({
    id: newBackupId(slug, new Date(Date.UTC(2026, 0, day))),
    tenant: slug,
    region: 'us-east',
    createdAt: new Date(Date.UTC(2026, 0, day)).toISOString(),
  });
  const entries = [at('a', 1), at('a', 10), at('a', 20), at('a', 30), at('b', 2)];
  const gone = (p: ReturnType<typeof planPrune>) => p.filter((e) => e.action !== 'kept').map((e) => e.id);
  it('keeps the newest N of each tenant, and everything younger than D days', () => {
    expect(gone(planPrune(entries, { keepLast: 2 }))).toEqual([entries[0].id, entries[1].id]);
    expect(gone(planPrune(entries, { keepDays: 15, now }))).toEqual([entries[0].id, entries[1].id, entries[4].id].sort());
    expect(gone(planPrune(entries, { keepLast: 1, keepDays: 15, now }))).toEqual([entries[0].id, entries[1].id]);
    expect(planPrune(entries, { keepLast: 1, dryRun: true, now }).filter((e) => e.action === 'would delete')).toHaveLength(3);
    expect(() => planPrune(entries, {})).toThrow(/--keep-last N or --keep-days D/);
  });
  it('never deletes an archive whose manifest it cannot read', () => {
    expect(
      gone(
        planPrune([...entries, { id: 'a.20200101T000000000Z', tenant: 'a', region: 'us-east', problem: 'bad' } as never], {
          keepLast: 1,
          now,
        }),
      ),
    ).not.toContain('a.20200101T000000000Z');
  });
  it('a damaged newest archive does not take one of the newest N places of a good one', () => {
    const damaged = { id: 'a.20260131T000000000Z', tenant: 'a', region: 'us-east', problem: 'manifest.json is not valid JSON' } as never;
    // keep-last 1: the newest good archive (day 30) stays, besides the damaged one.
    expect(gone(planPrune([...entries, damaged], { keepLast: 1 }))).toEqual([entries[0].id, entries[1].id, entries[2].id]);
    expect(gone(planPrune([...entries, damaged], { keepLast: 2 }))).toEqual([entries[0].id, entries[1].id]);
  });
});
