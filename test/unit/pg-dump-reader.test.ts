import { Readable, Writable, PassThrough } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { deflateSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { PgDumpReader, copyColumns, type DataSink, type DumpHeader } from '../../src/backup/pg-dump-reader.js';
import { CopyTrailer } from '../../src/backup/copy-trailer.js';

/** pg_dump's custom format (archive 1.14) as pg_backup_archiver.c writes it to a pipe. */
const int = (v: number) => {
  const b = Buffer.alloc(5);
  b[0] = v < 0 ? 1 : 0;
  b.writeUInt32LE(Math.abs(v), 1);
  return b;
};
const str = (s: string | null) => (s === null ? int(-1) : Buffer.concat([int(Buffer.byteLength(s)), Buffer.from(s)]));
function entry(id: number, desc: string, tag: string, copyStmt: string | null, namespace = 'app'): Buffer {
  return Buffer.concat([
    int(id),
    int(copyStmt ? 1 : 0),
    str('1259'),
    str('16384'),
    str(tag),
    str(desc),
    int(3),
    str(''),
    str(''),
    str(copyStmt),
    str(namespace),
    str(''),
    str('heap'),
    str('tenantctl'),
    str('false'),
    str('7'),
    str(null),
    Buffer.alloc(9), // offset flag + 8 bytes
  ]);
}
function dump(compression: number, blocks: Buffer[]): Buffer {
  const head = Buffer.concat([Buffer.from('PGDMP'), Buffer.from([1, 14, 0, 4, 8, 1]), int(compression)]);
  const time = Buffer.concat(Array.from({ length: 7 }, () => int(1)));
  const toc = Buffer.concat([
    int(3),
    entry(10, 'TABLE', 'tasks', null),
    entry(11, 'TABLE DATA', 'tasks', 'COPY app.tasks (tenant_id, id, "Title") FROM stdin;\n'),
    entry(12, 'TABLE DATA', 'notes', 'COPY app.notes (id) FROM stdin;\n'),
  ]);
  return Buffer.concat([head, time, str('db'), str('15.18'), str('15.18'), toc, ...blocks]);
}
/** A data block: type 1, dump id, the data in chunks of `size`, then a zero length. */
function block(id: number, data: Buffer, size = 5): Buffer {
  const parts: Buffer[] = [Buffer.from([1]), int(id)];
  for (let i = 0; i < data.length; i += size) parts.push(int(Math.min(size, data.length - i)), data.subarray(i, i + size));
  return Buffer.concat([...parts, int(0)]);
}
/** Large objects: type 3, dump id, per object its oid and chunks, ended by oid 0. */
const blobs = (id: number) => Buffer.concat([Buffer.from([3]), int(id), int(16500), int(3), Buffer.from('abc'), int(0), int(0)]);

async function read(bytes: Buffer, piece: number, want: number[]) {
  let header: DumpHeader | { unsupported: string } | undefined;
  const got = new Map<number, Buffer[]>();
  const reader = new PgDumpReader((h) => {
    header = h;
    if ('unsupported' in h) return null;
    const sinks = new Map<number, DataSink>();
    for (const id of want) {
      const stream = new PassThrough();
      const parts: Buffer[] = [];
      got.set(id, parts);
      const done = pipeline(stream, new Writable({ write: (c, _e, cb) => (parts.push(c), cb()) }));
      sinks.set(id, { stream, done });
    }
    return sinks;
  });
  const chunks: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += piece) chunks.push(bytes.subarray(i, i + piece));
  const passed: Buffer[] = [];
  await pipeline(Readable.from(chunks), reader, new Writable({ write: (c, _e, cb) => (passed.push(c), cb()) }));
  expect(Buffer.concat(passed).equals(bytes)).toBe(true);
  return { header, data: new Map([...got].map(([k, v]) => [k, Buffer.concat(v).toString()])) };
}

describe('PgDumpReader', () => {
  const tasks = Buffer.from('k\t1\tfirst\nk\t2\tsecond\n\\.\n\n\n');
  const notes = Buffer.from('9\n\\.\n\n\n');
  for (const piece of [1, 7, 4096]) {
    it(`reads the table of contents and hands each wanted table its block (pieces of ${piece} bytes), skipping large objects`, async () => {
      const bytes = dump(0, [block(11, tasks), blobs(99), block(12, notes)]);
      const r = await read(bytes, piece, [11]);
      expect(r.header).toMatchObject({ version: '1.14', compression: 0 });
      expect((r.header as DumpHeader).entries.map((e) => [e.dumpId, e.desc, e.namespace, e.tag])).toEqual([
        [10, 'TABLE', 'app', 'tasks'],
        [11, 'TABLE DATA', 'app', 'tasks'],
        [12, 'TABLE DATA', 'app', 'notes'],
      ]);
      expect(r.data.get(11)).toBe(tasks.toString());
    });
  }
  it('passes compressed blocks on as they are (the caller inflates)', async () => {
    const z = deflateSync(tasks);
    const r = await read(dump(1, [block(11, z, 3)]), 13, [11]);
    expect((r.header as DumpHeader).compression).toBe(1);
    expect(r.data.get(11)).toBe(z.toString());
  });
  it('reports another format as unsupported and passes everything on', async () => {
    const other = Buffer.concat([Buffer.from('PGDMP'), Buffer.from([1, 15, 0, 4, 8, 1]), Buffer.alloc(40)]);
    expect((await read(other, 8, [11])).header).toEqual({ unsupported: 'pg_dump archive version 1.15 (this reader knows 1.14)' });
    expect((await read(Buffer.from('--\n-- PostgreSQL database dump\n'), 8, [])).header).toMatchObject({ unsupported: /custom-format/ });
  });
  it('fails on a stream cut in the middle of a block', async () => {
    const bytes = dump(0, [block(11, tasks)]);
    await expect(read(bytes.subarray(0, bytes.length - 3), 64, [11])).rejects.toThrow(/ended in the middle/);
  });
});

describe('copyColumns and the COPY end marker', () => {
  it("reads a COPY statement's columns, quoted or not", () => {
    expect(copyColumns('COPY app.tasks (tenant_id, id, "Title", "a ""q"", b") FROM stdin;\n')).toEqual([
      'tenant_id',
      'id',
      'Title',
      'a "q", b',
    ]);
    expect(copyColumns(null)).toBeNull();
  });
  it("drops pg_dump's end marker, and refuses data without it", async () => {
    const run = async (chunks: string[]) => {
      const out: Buffer[] = [];
      await pipeline(
        Readable.from(chunks.map((c) => Buffer.from(c))),
        new CopyTrailer(),
        new Writable({ write: (c, _e, cb) => (out.push(c), cb()) }),
      );
      return Buffer.concat(out).toString();
    };
    expect(await run(['a\t1\n', 'b\t2\n\\', '.\n\n', '\n'])).toBe('a\t1\nb\t2\n');
    expect(await run(['\\.\n\n\n'])).toBe('');
    await expect(run(['a\t1\n'])).rejects.toThrow(/end marker/);
  });
});
