import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';

/**
 * What a copy measured of one table's COPY text: the row count, the SHA-256 of the bytes as they
 * came (the archive's integrity check) and an order-independent hash of the rows (the check that
 * two placements hold the same rows, whatever order COPY returned them in).
 */
export interface TableDigest {
  rows: number;
  /** SHA-256 (hex) of the COPY text as read, before any key rewrite. */
  sha256: string;
  /** Order-independent row hash (hex), key column blanked: see RowTap. */
  hash: string;
  bytes: number;
}

export interface RowTapOptions {
  /** Position of the tenant-key column among the copied columns. */
  keyIndex: number;
  /** Write this key into the key column of every row passed on (a clone under a new key). */
  rewriteKey?: string;
}

const TAB = 0x09;
const NL = 0x0a;

/**
 * A pass-through over PostgreSQL's COPY text format (one row per line; tabs and newlines inside
 * values are escaped, so splitting on the raw bytes is exact) that counts rows, hashes them and
 * optionally rewrites the key column.
 *
 * The row hash: MD5 of each row with its key field blanked, its four 32-bit words summed mod
 * 2^32 over all rows. Sums commute, so any row order gives the same hash, duplicates count, and
 * a clone under a new key (or the same rows in another model) hashes the same. MD5 here is a
 * fingerprint for equality, not a defence against an attacker (the archive's SHA-256 is that).
 *
 * @example
 *   const tap = new RowTap({ keyIndex: 0 });
 *   await pipeline(copyOut, tap, gzip, file);
 *   tap.digest() // { rows: 1000, sha256: '…', hash: '…', bytes: 81234 }
 */
export class RowTap extends Transform {
  private readonly sha = createHash('sha256');
  private readonly acc = new Uint32Array(4);
  private rows = 0;
  get rowCount(): number {
    return this.rows;
  }
  private bytes = 0;
  private rest: Buffer | null = null;
  private readonly newKey?: Buffer;

  constructor(private readonly opts: RowTapOptions) {
    super();
    if (opts.rewriteKey !== undefined) this.newKey = Buffer.from(opts.rewriteKey, 'utf8');
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.sha.update(chunk);
    this.bytes += chunk.length;
    let buf = chunk;
    if (this.rest) {
      buf = Buffer.concat([this.rest, chunk]);
      this.rest = null;
    }
    let start = 0;
    const out: Buffer[] = [];
    for (;;) {
      const nl = buf.indexOf(NL, start);
      if (nl < 0) break;
      const line = this.row(buf, start, nl);
      if (line) out.push(line);
      start = nl + 1;
    }
    if (start < buf.length) this.rest = buf.subarray(start);
    if (this.newKey) {
      if (out.length) this.push(Buffer.concat(out));
    } else {
      const whole = start === buf.length ? buf : buf.subarray(0, start);
      // Pass on complete lines only; the carried remainder goes with the next chunk.
      if (whole.length) this.push(whole === chunk ? chunk : Buffer.from(whole));
    }
    cb();
  }

  override _flush(cb: TransformCallback): void {
    if (this.rest && this.rest.length) {
      cb(new Error('COPY data ends in the middle of a row (truncated archive?)'));
      return;
    }
    cb();
  }

  /** Hash one row (bytes [s, e) without its newline); with a new key, return the rewritten line. */
  private row(buf: Buffer, s: number, e: number): Buffer | null {
    // COPY text ends with "\." only in files written by psql; COPY TO STDOUT does not send it.
    this.rows++;
    let ks = s;
    for (let i = 0; i < this.opts.keyIndex; i++) {
      const t = buf.indexOf(TAB, ks);
      if (t < 0 || t >= e) throw new Error(`a row has fewer columns than the key's position ${this.opts.keyIndex + 1}`);
      ks = t + 1;
    }
    let ke = buf.indexOf(TAB, ks);
    if (ke < 0 || ke > e) ke = e;
    const h: Hash = createHash('md5');
    h.update(buf.subarray(s, ks));
    h.update(buf.subarray(ke, e));
    const d = h.digest();
    const a = this.acc;
    a[0] = (a[0] + d.readUInt32LE(0)) >>> 0;
    a[1] = (a[1] + d.readUInt32LE(4)) >>> 0;
    a[2] = (a[2] + d.readUInt32LE(8)) >>> 0;
    a[3] = (a[3] + d.readUInt32LE(12)) >>> 0;
    if (!this.newKey) return null;
    return Buffer.concat([buf.subarray(s, ks), this.newKey, buf.subarray(ke, e + 1)]);
  }

  digest(): TableDigest {
    const hex = [...this.acc].map((w) => w.toString(16).padStart(8, '0')).join('');
    return { rows: this.rows, sha256: this.sha.copy().digest('hex'), hash: `${this.rows}:${hex}`, bytes: this.bytes };
  }
}
