/**
 * Which rows a stretch of logical decoding changed, read from PostgreSQL's own `pgoutput` plugin
 * (protocol version 1, text tuples) as `pg_logical_slot_peek_binary_changes` returns it: per
 * table, the primary-key images (jsonb text) of every row inserted, updated (old and new key) or
 * deleted; a table whose rows cannot be named by key (TRUNCATE, a key column missing or unchanged
 * TOAST in an image) is `whole`. Pure: the messages in, the changed rows out (unit-tested).
 *
 * Message layout (PostgreSQL docs, "Logical Replication Message Formats"): Relation `R` (Int32 oid,
 * String namespace, String name, Int8 replica identity, Int16 columns, each Int8 flags, String
 * name, Int32 type, Int32 typmod); Insert `I` (Int32 oid, `N`, TupleData); Update `U` (Int32 oid,
 * optionally `K` or `O` and TupleData, then `N` and TupleData); Delete `D` (Int32 oid, `K` or `O`,
 * TupleData); Truncate `T` (Int32 count, Int8 options, Int32 oids). TupleData: Int16 columns, each
 * `n` (null), `u` (unchanged TOAST) or `t` (Int32 length, text). Anything else is skipped.
 */
export interface ChangedRows {
  /** Table name → the changed rows' primary-key images (JSON objects of text values), deduplicated. */
  touched: Map<string, Set<string>>;
  /** Tables to be measured whole. */
  whole: Set<string>;
  /** Change messages read (inserts, updates, deletes, truncates). */
  changes: number;
}

export function emptyChanges(): ChangedRows {
  return { touched: new Map(), whole: new Set(), changes: 0 };
}

class Reader {
  private at = 0;
  constructor(private readonly b: Buffer) {}
  byte(): string {
    return String.fromCharCode(this.b[this.at++]);
  }
  int8(): number {
    return this.b.readInt8(this.at++);
  }
  int16(): number {
    const v = this.b.readInt16BE(this.at);
    this.at += 2;
    return v;
  }
  int32(): number {
    const v = this.b.readInt32BE(this.at);
    this.at += 4;
    return v;
  }
  cstring(): string {
    const end = this.b.indexOf(0, this.at);
    const s = this.b.toString('utf8', this.at, end);
    this.at = end + 1;
    return s;
  }
  text(n: number): string {
    const s = this.b.toString('utf8', this.at, this.at + n);
    this.at += n;
    return s;
  }
}

type Tuple = (string | null | undefined)[];

function tuple(r: Reader): Tuple {
  const n = r.int16();
  const out: Tuple = [];
  for (let i = 0; i < n; i++) {
    const kind = r.byte();
    if (kind === 't' || kind === 'b') out.push(r.text(r.int32()));
    else out.push(kind === 'n' ? null : undefined);
  }
  return out;
}

/**
 * Add the rows these messages changed to `into` (relations seen in earlier messages of the same
 * peek are remembered in `relations`). Only tables of `schema` named in `pk` count.
 */
export function addChanges(
  into: ChangedRows,
  messages: Buffer[],
  schema: string,
  pk: Map<string, string[]>,
  relations = new Map<number, { table: string; columns: string[] }>(),
): ChangedRows {
  const note = (oid: number, t: Tuple) => {
    const rel = relations.get(oid);
    if (!rel || !pk.has(rel.table)) return;
    const key = pk.get(rel.table)!;
    const image: Record<string, string> = {};
    for (const col of key) {
      const v = t[rel.columns.indexOf(col)];
      // A key column not in the image (or null): the row cannot be named, the table is measured whole.
      if (typeof v !== 'string') return void into.whole.add(rel.table);
      image[col] = v;
    }
    if (key.length === 0) return void into.whole.add(rel.table);
    const set = into.touched.get(rel.table) ?? new Set<string>();
    set.add(JSON.stringify(image));
    into.touched.set(rel.table, set);
  };
  for (const m of messages) {
    const r = new Reader(m);
    const kind = r.byte();
    if (kind === 'R') {
      const oid = r.int32();
      const ns = r.cstring();
      const table = r.cstring();
      r.int8();
      const n = r.int16();
      const columns: string[] = [];
      for (let i = 0; i < n; i++) {
        r.int8();
        columns.push(r.cstring());
        r.int32();
        r.int32();
      }
      if (ns === schema) relations.set(oid, { table, columns });
    } else if (kind === 'I') {
      into.changes++;
      const oid = r.int32();
      r.byte();
      note(oid, tuple(r));
    } else if (kind === 'U' || kind === 'D') {
      into.changes++;
      const oid = r.int32();
      const marker = r.byte();
      if (marker === 'K' || marker === 'O') {
        note(oid, tuple(r));
        if (kind === 'D') continue;
        r.byte(); // 'N': the new row follows
      }
      note(oid, tuple(r));
    } else if (kind === 'T') {
      into.changes++;
      const n = r.int32();
      r.int8();
      for (let i = 0; i < n; i++) {
        const rel = relations.get(r.int32());
        if (rel && pk.has(rel.table)) into.whole.add(rel.table);
      }
    }
  }
  return into;
}
