import { describe, expect, it } from 'vitest';
import { addChanges, emptyChanges } from '../../src/move/pgoutput-changes.js';

/** pgoutput protocol 1 messages, built byte by byte as the server sends them. */
const i16 = (n: number) => Buffer.from([(n >> 8) & 0xff, n & 0xff]);
const i32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n);
  return b;
};
const str = (s: string) => Buffer.concat([Buffer.from(s), Buffer.from([0])]);
const ch = (c: string) => Buffer.from(c);
const rel = (oid: number, ns: string, name: string, cols: string[]) =>
  Buffer.concat([
    ch('R'),
    i32(oid),
    str(ns),
    str(name),
    Buffer.from([100]),
    i16(cols.length),
    ...cols.flatMap((c) => [Buffer.from([0]), str(c), i32(25), i32(-1)]),
  ]);
const tup = (vals: (string | null | 'TOAST')[]) =>
  Buffer.concat([
    i16(vals.length),
    ...vals.map((v) =>
      v === null ? ch('n') : v === 'TOAST' ? ch('u') : Buffer.concat([ch('t'), i32(Buffer.byteLength(v)), Buffer.from(v)]),
    ),
  ]);

describe('pgoutput changes: the rows a stretch of decoding changed, by primary key', () => {
  const pk = new Map([
    ['tasks', ['tenant_id', 'id']],
    ['projects', ['tenant_id', 'id']],
  ]);

  it('inserts, updates (old and new key) and deletes name their rows; other schemas and tables are left out', () => {
    const msgs = [
      ch('B'),
      rel(1, 'app', 'tasks', ['tenant_id', 'id', 'title']),
      rel(2, 'other', 'tasks', ['tenant_id', 'id', 'title']),
      Buffer.concat([ch('I'), i32(1), ch('N'), tup(['k', '1', 'a'])]),
      Buffer.concat([ch('I'), i32(2), ch('N'), tup(['k', '9', 'x'])]),
      Buffer.concat([ch('U'), i32(1), ch('K'), tup(['k', '2', null]), ch('N'), tup(['k', '3', 'b'])]),
      Buffer.concat([ch('U'), i32(1), ch('N'), tup(['k', '1', 'c'])]),
      Buffer.concat([ch('D'), i32(1), ch('K'), tup(['k', '4', null])]),
      ch('C'),
    ];
    const out = addChanges(emptyChanges(), msgs, 'app', pk);
    expect(out.changes).toBe(5);
    expect([...out.touched.get('tasks')!].map((x) => JSON.parse(x).id).sort()).toEqual(['1', '2', '3', '4']);
    expect(out.whole.size).toBe(0);
  });

  it('a TRUNCATE, or a key column the image lacks, leaves the table to be measured whole', () => {
    const msgs = [
      rel(1, 'app', 'tasks', ['tenant_id', 'id', 'title']),
      rel(3, 'app', 'projects', ['tenant_id', 'id']),
      Buffer.concat([ch('U'), i32(3), ch('N'), tup(['k', 'TOAST'])]),
      Buffer.concat([ch('T'), i32(1), Buffer.from([0]), i32(1)]),
    ];
    const out = addChanges(emptyChanges(), msgs, 'app', pk);
    expect([...out.whole].sort()).toEqual(['projects', 'tasks']);
  });
});
