import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it, vi } from 'vitest';
import { RowTap, type RowTapOptions } from '../../src/copy/row-tap.js';

async function tap(text: string, opts: RowTapOptions, chunkSize: number) {
  const buf = Buffer.from(text);
  const chunks: Buffer[] = [];
  for (let i = 0; i < buf.length; i += chunkSize) chunks.push(buf.subarray(i, i + chunkSize));
  const t = new RowTap(opts);
  const out: Buffer[] = [];
  await pipeline([Readable.from(chunks), t, new Writable({ write: (c, _e, cb) => (out.push(c), cb()) })] as never);
  return { digest: t.digest(), out: Buffer.concat(out).toString() };
}

describe('RowTap without the row hash or the SHA-256 (loads checked by reading back)', () => {
  const rows = 'a\tk1\t1\nb\\tx\tk1\t2\nc\tk1\t\\N\n';
  it('counts the same rows and passes the same bytes, with or without a key rewrite, in any chunking', async () => {
    for (const size of [1, 3, 7, 100]) {
      const full = await tap(rows, { keyIndex: 1 }, size);
      const lean = await tap(rows, { keyIndex: 1, rowHash: false }, size);
      expect(lean.digest).toEqual({ ...full.digest, hash: '' });
      expect(lean.out).toBe(rows);
      const rewritten = await tap(rows, { keyIndex: 1, rowHash: false, sha256: false, rewriteKey: 'k2' }, size);
      expect(rewritten.out).toBe(rows.replace(/k1/g, 'k2'));
      expect(rewritten.digest).toMatchObject({ rows: 3, sha256: '', hash: '' });
    }
  });
  it('still refuses a truncated stream and a row without the key column when rewriting', async () => {
    await expect(tap('a\tk1\t1\nb\tk1', { keyIndex: 1, rowHash: false }, 4)).rejects.toThrow(/middle of a row/);
    await expect(tap('a\n', { keyIndex: 1, rowHash: false, rewriteKey: 'k2' }, 4)).rejects.toThrow(/fewer columns/);
  });
});

describe('RowTap over one value of many megabytes (a bytea of a PDF, in 8 KB chunks as COPY sends it)', () => {
  // Correctness at 8 MB; a generous timeout, since a loaded CI machine is slow, not wrong.
  it('passes and hashes it as one chunk would', { timeout: 120_000 }, async () => {
    const big = `x\tk1\t${'\\\\x'}${'0123456789abcdef'.repeat(1 << 19)}\ny\tk1\t2\n`; // one 8 MB row, then a small one
    for (const opts of [
      { keyIndex: 1 },
      { keyIndex: 1, rowHash: false },
      { keyIndex: 1, rowHash: false, sha256: false, rewriteKey: 'k2' },
    ]) {
      const whole = await tap(big, opts, big.length);
      const chunked = await tap(big, opts, 8192);
      expect(chunked.digest).toEqual(whole.digest);
      expect(chunked.out.length).toBe(whole.out.length);
      expect(chunked.out === whole.out).toBe(true);
      expect(chunked.digest.rows).toBe(2);
    }
  });

  // The cost, counted rather than timed: the cut row was copied again for every chunk (minutes
  // for 32 MB); each of its bytes is now joined once.
  it('joins each byte of a cut row once, not once per chunk', async () => {
    const row = `x\tk1\t${'0123456789abcdef'.repeat(1 << 16)}\n`; // 1 MB in 128 chunks
    for (const opts of [{ keyIndex: 1 }, { keyIndex: 1, rowHash: false, sha256: false, rewriteKey: 'k2' }]) {
      let joined = 0;
      const concat = Buffer.concat;
      const spy = vi.spyOn(Buffer, 'concat').mockImplementation((list, total) => {
        const b = concat(list, total);
        joined += b.length;
        return b;
      });
      try {
        await tap(row, opts, 8192);
      } finally {
        spy.mockRestore();
      }
      // The row once, its output once more when the key is rewritten, and once by tap() itself
      // collecting what passed; the old carry joined ~64 rows' worth here.
      expect(joined).toBeLessThanOrEqual(3 * row.length + 64);
    }
  });
});
