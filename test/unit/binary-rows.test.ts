import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { BinaryRowCount } from '../../src/copy/binary-rows.js';

/** COPY BINARY of `rows` (each a list of fields, null for NULL), with an extension area of `ext` bytes. */
function binary(rows: (Buffer | null)[][], ext = 0): Buffer {
  const head = Buffer.alloc(19 + ext);
  Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1').copy(head);
  head.writeUInt32BE(ext, 15);
  const parts: Buffer[] = [head];
  for (const r of rows) {
    const n = Buffer.alloc(2);
    n.writeInt16BE(r.length);
    parts.push(n);
    for (const f of r) {
      const len = Buffer.alloc(4);
      len.writeInt32BE(f ? f.length : -1);
      parts.push(len, ...(f ? [f] : []));
    }
  }
  parts.push(Buffer.from([0xff, 0xff]));
  return Buffer.concat(parts);
}

async function count(buf: Buffer, chunkSize: number) {
  const chunks: Buffer[] = [];
  for (let i = 0; i < buf.length; i += chunkSize) chunks.push(buf.subarray(i, i + chunkSize));
  const t = new BinaryRowCount();
  const out: Buffer[] = [];
  await pipeline([Readable.from(chunks), t, new Writable({ write: (c, _e, cb) => (out.push(c), cb()) })] as never);
  return { digest: t.digest(), out: Buffer.concat(out) };
}

describe('BinaryRowCount (a move streaming COPY BINARY)', () => {
  // A row of NULLs, an empty value, a value whose bytes look like a row's field count and length, a row of no fields.
  const data = binary(
    [
      [Buffer.from('a'), null, Buffer.from([0xff, 0xff, 0xff, 0xff])],
      [null, null, null],
      [Buffer.alloc(0), Buffer.alloc(300, 7), Buffer.from([0, 3])],
      [],
    ],
    5,
  );
  it('counts the rows and passes every byte as it came, however the stream is cut', async () => {
    for (const size of [1, 2, 3, 5, 19, 20, 64, data.length]) {
      const r = await count(data, size);
      expect(r.digest).toEqual({ rows: 4, bytes: data.length });
      expect(r.out.equals(data)).toBe(true);
    }
  });
  it('refuses a stream cut inside a row or before the trailer', async () => {
    await expect(count(data.subarray(0, data.length - 5), 7)).rejects.toThrow(/middle of a row/);
    await expect(count(data.subarray(0, data.length - 2), 7)).rejects.toThrow(/middle of a row/);
  });
});
