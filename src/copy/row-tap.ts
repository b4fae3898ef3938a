import { createHash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';

/**
 * What a copy measured of one table's COPY text: the row count, the SHA-256 of the bytes as they
 * came (the archive's integrity check) and an order-independent hash of the rows (the check that
 * two placements hold the same rows, whatever order COPY returned them in).
 */
export interface TableDigest {
  rows: number;
  /** SHA-256 (hex) of the COPY text as read, before any key rewrite ('' when not asked for). */
  sha256: string;
  /** Order-independent row hash, key column blanked: `<rows>:<32 hex digits>` (see RowTap). */
  hash: string;
  bytes: number;
}

export interface RowTapOptions {
  /** Position of the tenant-key column among the copied columns. */
  keyIndex: number;
  /** Write this key into the key column of every row passed on (a clone under a new key). */
  rewriteKey?: string;
  /**
   * Take the SHA-256 of the bytes (default true): what an archive records and a restore checks
   * the stream against. A read-back or a move compares row hashes only, and SHA-256 over every
   * byte costs about as much as the row hash itself.
   */
  sha256?: boolean;
  /**
   * Take the order-independent row hash (default true). A load that is read back and compared
   * afterwards (restore, move) needs only the row count (and the SHA-256, for a restore) of the
   * stream: the hash loop is most of the tap's time.
   */
  rowHash?: boolean;
}

const TAB = 0x09;
const NL = 0x0a;

/** MurmurHash3's 32-bit finalizer: every input bit affects every output bit. */
function fmix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/**
 * A pass-through over PostgreSQL's COPY text format (one row per line; tabs and newlines inside
 * values are escaped, so scanning the raw bytes is exact) that counts rows, hashes them and
 * optionally rewrites the key column, in one pass over the bytes.
 *
 * The row hash: each row's bytes, with the key field skipped, go through two multiplicative
 * (FNV-1a style) 32-bit lanes, finished with MurmurHash3's mixer; four 32-bit sums over all rows
 * (the two lanes and two mixes of them) make the table's hash. Native indexOf finds the row and
 * key boundaries; only the hashing is a JS loop. Sums commute, so any row order
 * gives the same hash, duplicates count, and a clone under a new key (or the same rows in another
 * model) hashes the same. It is a fingerprint for equality, not a defence against an attacker
 * (the SHA-256 of the data is that). No per-row allocation: a per-row crypto hash object cost
 * ~5 µs a row, most of a million-row backup.
 *
 * @example
 *   const tap = new RowTap({ keyIndex: 0 });
 *   await pipeline(copyOut, tap, gzip, file);
 *   tap.digest() // { rows: 1000, sha256: '…', hash: '1000:…', bytes: 81234 }
 */
export class RowTap extends Transform {
  private readonly sha: ReturnType<typeof createHash> | null;
  private a0 = 0;
  private a1 = 0;
  private a2 = 0;
  private a3 = 0;
  private rows = 0;
  private bytes = 0;
  /**
   * The start of a row cut by the chunk boundary, carried to the next chunk: kept as the chunks
   * came and joined once its end arrives, so a value of many megabytes (64 KB chunks) is copied
   * once, not once per chunk (that was quadratic: 8 MB took 17 s to back up, 32 MB minutes).
   */
  private rest: Buffer[] = [];
  private readonly newKey?: Buffer;

  constructor(private readonly opts: RowTapOptions) {
    super();
    this.sha = opts.sha256 === false ? null : createHash('sha256');
    if (opts.rewriteKey !== undefined) this.newKey = Buffer.from(opts.rewriteKey, 'utf8');
  }

  get rowCount(): number {
    return this.rows;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.sha?.update(chunk);
    this.bytes += chunk.length;
    // Still inside the carried row: nothing ends here, nothing to pass on yet.
    if (this.rest.length > 0 && chunk.indexOf(NL) < 0) {
      this.rest.push(chunk);
      return cb();
    }
    let buf = chunk;
    if (this.rest.length > 0) {
      buf = Buffer.concat([...this.rest, chunk]);
      this.rest = [];
    }
    const key = this.opts.keyIndex;
    const rewrite = this.newKey;
    const hashRows = this.opts.rowHash !== false;
    const pieces: Buffer[] = [];
    let s = 0;
    if (!hashRows && !rewrite) {
      // Rows counted by their ends only.
      for (let e = buf.indexOf(NL, s); e >= 0; e = buf.indexOf(NL, s)) {
        this.rows++;
        s = e + 1;
      }
    }
    for (; hashRows || rewrite; ) {
      // Native scans find the row's end and its key field; a tight loop hashes the rest.
      const e = buf.indexOf(NL, s);
      if (e < 0) break;
      let ks = s;
      for (let k = 0; k < key; k++) {
        const t = buf.indexOf(TAB, ks);
        if (t < 0 || t > e) return cb(new Error(`a row has fewer columns than the key's position ${key + 1}`));
        ks = t + 1;
      }
      let ke = buf.indexOf(TAB, ks);
      if (ke < 0 || ke > e) ke = e;
      if (!hashRows) {
        this.rows++;
        pieces.push(buf.subarray(s, ks), rewrite!, buf.subarray(ke, e + 1));
        s = e + 1;
        continue;
      }
      let h1 = 0x811c9dc5;
      let h2 = 0x2f6b9a73;
      for (let i = s; i < ks; i++) {
        const b = buf[i];
        h1 = Math.imul(h1 ^ b, 0x01000193);
        h2 = Math.imul(h2 ^ b, 0x5bd1e995);
      }
      for (let i = ke; i < e; i++) {
        const b = buf[i];
        h1 = Math.imul(h1 ^ b, 0x01000193);
        h2 = Math.imul(h2 ^ b, 0x5bd1e995);
      }
      const f1 = fmix(h1);
      const f2 = fmix(h2 ^ (e - s - (ke - ks)));
      this.a0 = (this.a0 + f1) >>> 0;
      this.a1 = (this.a1 + f2) >>> 0;
      this.a2 = (this.a2 + fmix(f1 ^ Math.imul(f2, 0x9e3779b1))) >>> 0;
      this.a3 = (this.a3 + fmix(f2 ^ (f1 >>> 7) ^ 0x5bd1e995)) >>> 0;
      this.rows++;
      if (rewrite) pieces.push(buf.subarray(s, ks), rewrite, buf.subarray(ke, e + 1));
      s = e + 1;
    }
    if (s < buf.length) this.rest = [Buffer.from(buf.subarray(s))];
    if (rewrite) {
      if (pieces.length) this.push(Buffer.concat(pieces));
    } else if (s > 0) {
      // Complete rows only; the carried remainder goes out with the next chunk.
      this.push(s === buf.length ? buf : buf.subarray(0, s));
    }
    cb();
  }

  override _flush(cb: TransformCallback): void {
    if (this.rest.some((b) => b.length > 0)) {
      cb(new Error('COPY data ends in the middle of a row (truncated archive?)'));
      return;
    }
    cb();
  }

  digest(): TableDigest {
    if (this.opts.rowHash === false)
      return { rows: this.rows, sha256: this.sha ? this.sha.copy().digest('hex') : '', hash: '', bytes: this.bytes };
    const hex = [this.a0, this.a1, this.a2, this.a3].map((w) => w.toString(16).padStart(8, '0')).join('');
    return { rows: this.rows, sha256: this.sha ? this.sha.copy().digest('hex') : '', hash: `${this.rows}:${hex}`, bytes: this.bytes };
  }
}
